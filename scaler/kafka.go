package scaler

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// kafkaReader reads a job's offsets with kadm. One per Coordinator; kadm's
// client is safe for concurrent use, the reader holds no other state.
type kafkaReader struct {
	adm *kadm.Client
}

// topics resolves the job's topics: the configured list, the topics matching
// the regex, or else the topics the group has committed offsets for.
func (r kafkaReader) topics(ctx context.Context, j JobConfig) ([]string, error) {
	if len(j.Topics) > 0 {
		return j.Topics, nil
	}
	if j.TopicRegex != "" {
		re, err := regexp.Compile(j.TopicRegex)
		if err != nil {
			return nil, fmt.Errorf("topic regex %q: %w", j.TopicRegex, err)
		}
		listed, err := r.adm.ListTopics(ctx)
		if err != nil {
			return nil, fmt.Errorf("list topics: %w", err)
		}
		var out []string
		for _, t := range listed.Names() {
			if re.MatchString(t) {
				out = append(out, t)
			}
		}
		return out, nil
	}
	committed, err := r.adm.FetchOffsets(ctx, j.Name)
	if err != nil {
		return nil, fmt.Errorf("fetch offsets of group %s: %w", j.Name, err)
	}
	var out []string
	for t := range committed {
		out = append(out, t)
	}
	sort.Strings(out)
	return out, nil
}

// sample reads end, start and committed offsets of the job's partitions.
// A partition the group has not committed counts from its start offset.
func (r kafkaReader) sample(ctx context.Context, j JobConfig, now time.Time) (KafkaSample, error) {
	topics, err := r.topics(ctx, j)
	if err != nil {
		return KafkaSample{}, err
	}
	if len(topics) == 0 {
		return KafkaSample{}, fmt.Errorf("job %s: no topics (none configured, none committed by the group)", j.Name)
	}
	ends, err := r.adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return KafkaSample{}, fmt.Errorf("list end offsets: %w", err)
	}
	starts, err := r.adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return KafkaSample{}, fmt.Errorf("list start offsets: %w", err)
	}
	committed, err := r.adm.FetchOffsetsForTopics(ctx, j.Name, topics...)
	if err != nil {
		return KafkaSample{}, fmt.Errorf("fetch offsets of group %s: %w", j.Name, err)
	}
	s := KafkaSample{At: now}
	var firstErr error
	ends.Each(func(e kadm.ListedOffset) {
		if e.Err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("end offset of %s/%d: %w", e.Topic, e.Partition, e.Err)
			}
			return
		}
		s.Partitions++
		s.End += e.Offset
		pos := int64(0)
		if st, ok := starts.Lookup(e.Topic, e.Partition); ok && st.Err == nil {
			pos = st.Offset
		}
		if c, ok := committed.Lookup(e.Topic, e.Partition); ok && c.Err == nil && c.At >= 0 {
			pos = max(pos, c.At)
		}
		s.Backlog += max(0, e.Offset-pos)
	})
	if firstErr != nil {
		// A partial sum would read as a drop in backlog: no sample at all.
		return KafkaSample{}, firstErr
	}
	return s, nil
}
