package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicehq/sluice/engine"
)

// health collects why the source cannot make progress, by kind ("brokers",
// "topics", "fetch"), and reports the combined reason on every change.
type health struct {
	report func(string)
	log    *slog.Logger

	mu      sync.Mutex // guards reasons, last; held across report so calls are serial
	reasons map[string]string
	last    string
}

// set records (reason != "") or clears (reason == "") one kind.
func (h *health) set(kind, reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if reason == "" {
		delete(h.reasons, kind)
	} else {
		h.reasons[kind] = reason
	}
	var parts []string
	for _, k := range sortedKeys(h.reasons) {
		parts = append(parts, h.reasons[k])
	}
	now := strings.Join(parts, "; ")
	if now == h.last {
		// Re-assert an unchanged problem (each probe does): the runtime
		// marks itself ready when it starts its source, which may come
		// after the first report.
		if now != "" && h.report != nil {
			h.report(now)
		}
		return
	}
	h.last = now
	if now == "" {
		h.log.Info("kafka source healthy again")
	} else {
		h.log.Error("kafka source cannot make progress; retrying with backoff", "reason", now)
	}
	if h.report != nil {
		h.report(now)
	}
}

// probe asks the brokers for the subscription's metadata: it finds
// unreachable brokers (and TLS or SASL failures, which fail the same
// request), topics that do not exist, and topics this principal may not
// read. It reports whether the brokers answered.
func (s *Source) probe(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	md, err := s.adm.Metadata(ctx, s.cfg.Topics...)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			return true // shutting down
		}
		s.health.set("brokers", fmt.Sprintf("kafka: brokers %s unreachable: %v", strings.Join(s.cfg.Brokers, ","), err))
		return false
	}
	s.health.set("brokers", "")
	var bad []string
	for _, t := range s.cfg.Topics {
		td, ok := md.Topics[t]
		switch {
		case !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition):
			bad = append(bad, fmt.Sprintf("kafka: topic %q does not exist", t))
		case errors.Is(td.Err, kerr.TopicAuthorizationFailed):
			bad = append(bad, fmt.Sprintf("kafka: not authorized to read topic %q", t))
		case td.Err != nil:
			bad = append(bad, fmt.Sprintf("kafka: topic %q: %v", t, td.Err))
		}
	}
	s.health.set("topics", strings.Join(bad, "; "))
	return true
}

// fetchFailed records a fetch or group error that needs an operator:
// authorization failures. Other fetch errors are retried by franz-go.
func (s *Source) fetchFailed(topic string, p int32, err error) bool {
	if errors.Is(err, kerr.GroupAuthorizationFailed) || errors.Is(err, kerr.TopicAuthorizationFailed) ||
		errors.Is(err, kerr.SaslAuthenticationFailed) || errors.Is(err, kerr.ClusterAuthorizationFailed) {
		where := "group " + s.cfg.Group
		if topic != "" {
			where = fmt.Sprintf("%s/%d", topic, p)
		}
		s.health.set("fetch", fmt.Sprintf("kafka: %s: %v", where, err))
		return true
	}
	return false
}

// fenced reports a group error that says another member took this member's
// static instance id (FENCED_INSTANCE_ID): this member owns no task and never
// will until the other one leaves. It is the "group" health reason, so that
// readiness shows it and it is logged once, not at every rejoin attempt.
func (s *Source) fenced(err error) bool {
	if !errors.Is(err, kerr.FencedInstanceID) {
		return false
	}
	s.health.set("group", fmt.Sprintf("kafka: fenced out of group %s: another member joined with instance id %q; this member owns no tasks", s.cfg.Group, s.cfg.InstanceID))
	return true
}

// checkGroupEnd, for a bounded job, ends the source once every task this
// member owns has ended and every other task of the backfill is committed
// at or past its end by whichever member owned it. With several members a
// member cannot wait for its own tasks alone: the tasks it will never own
// are someone else's to finish.
func (s *Source) checkGroupEnd(ctx context.Context) {
	s.mu.Lock()
	if s.allDone || len(s.ends) == 0 {
		s.mu.Unlock()
		return
	}
	for id := range s.owned {
		if !s.ended[id] {
			s.mu.Unlock()
			return
		}
	}
	var rest []engine.TaskID
	for id := range s.ends {
		if !s.ended[id] && !s.empty[id] {
			rest = append(rest, id)
		}
	}
	s.mu.Unlock()
	if len(rest) > 0 {
		offs, err := s.adm.FetchOffsets(ctx, s.cfg.Group)
		if err != nil {
			return
		}
		for _, id := range rest {
			o, ok := offs.Lookup(id.Topic, id.Partition)
			s.mu.Lock()
			end := s.ends[id]
			s.mu.Unlock()
			if (!ok || o.Err != nil || o.At < 0) && s.cfg.Start == "latest" {
				continue // never committed, and latest starts at the end: nothing to read
			}
			if !ok || o.Err != nil || o.At < end {
				return
			}
		}
	}
	s.finishAll()
}

func (s *Source) finishAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.allDone {
		s.allDone = true
		close(s.allEnd)
	}
}
