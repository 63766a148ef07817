package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/engine"
)

// Config configures a Source.
type Config struct {
	Brokers []string
	// Group is the consumer group: the job name.
	Group string
	// InstanceID is the static member id (group.instance.id): the pod name.
	// Empty means dynamic membership.
	InstanceID string
	// Topics and TopicRegex are the subscription: every topic of every
	// pipeline. With TopicRegex, topics created later are picked up.
	Topics     []string
	TopicRegex []string
	// Start is "earliest" or "latest" for tasks with no committed offset.
	Start string
	// StopAtEnd ends each task at the end offset it had when the source
	// started (a bounded backfill).
	StopAtEnd bool
	TLS       *tls.Config
	// Opts are extra franz-go options (SASL, balancers, tuning).
	Opts []kgo.Opt
	// Registerer receives the source metrics (nil: none).
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Source is a Kafka group consumer feeding engine tasks.
type Source struct {
	cfg Config
	cl  *kgo.Client
	adm *kadm.Client
	h   engine.Handler
	log *slog.Logger
	m   *metrics

	mu     sync.Mutex // guards ends, ended, empty, owned, avg
	ends   map[engine.TaskID]int64
	ended  map[engine.TaskID]bool
	empty  map[engine.TaskID]bool
	owned  map[engine.TaskID]bool
	avg    map[engine.TaskID]float64 // moving average record size, for backlog bytes
	allEnd chan struct{}

	regexes []*regexp.Regexp
}

type metrics struct {
	backlog, backlogBytes *prometheus.GaugeVec
}

// New builds the client. It does not contact the brokers until Run.
func New(cfg Config) (*Source, error) {
	if len(cfg.Brokers) == 0 || cfg.Group == "" {
		return nil, errors.New("kafka: brokers and group are required")
	}
	if len(cfg.Topics) == 0 && len(cfg.TopicRegex) == 0 {
		return nil, errors.New("kafka: no topics to consume")
	}
	s := &Source{
		cfg: cfg, log: cfg.Logger,
		ends: map[engine.TaskID]int64{}, ended: map[engine.TaskID]bool{}, empty: map[engine.TaskID]bool{}, owned: map[engine.TaskID]bool{},
		avg: map[engine.TaskID]float64{}, allEnd: make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	l := []string{"group", "topic", "partition"}
	s.m = &metrics{
		backlog:      prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_source_backlog_records", Help: "End offset minus position, per task."}, l),
		backlogBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_source_backlog_bytes", Help: "Backlog records times the task's average record size."}, l),
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(s.m.backlog, s.m.backlogBytes)
	}
	for _, r := range cfg.TopicRegex {
		re, err := regexp.Compile(r)
		if err != nil {
			return nil, fmt.Errorf("kafka: topic regex %q: %w", r, err)
		}
		s.regexes = append(s.regexes, re)
	}
	reset := kgo.NewOffset().AtStart()
	if cfg.Start == "latest" {
		reset = kgo.NewOffset().AtEnd()
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ConsumerGroup(cfg.Group),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(reset),
		kgo.OnPartitionsAssigned(s.assigned),
		kgo.OnPartitionsRevoked(s.revoked),
		kgo.OnPartitionsLost(s.lost),
		kgo.AdjustFetchOffsetsFn(s.adjust),
		kgo.FetchMaxWait(500 * time.Millisecond),
	}
	if len(cfg.TopicRegex) > 0 {
		opts = append(opts, kgo.ConsumeTopics(cfg.TopicRegex...), kgo.ConsumeRegex(), kgo.MetadataMaxAge(10*time.Second))
	} else {
		opts = append(opts, kgo.ConsumeTopics(cfg.Topics...), kgo.MetadataMaxAge(10*time.Second))
	}
	if cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(cfg.InstanceID))
	}
	if cfg.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(cfg.TLS))
	}
	opts = append(opts, cfg.Opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	s.cl = cl
	s.adm = kadm.NewClient(cl)
	return s, nil
}

// Client returns the franz-go client (for tests and admin tools).
func (s *Source) Client() *kgo.Client { return s.cl }

// Run implements engine.Source.
func (s *Source) Run(ctx context.Context, h engine.Handler) error {
	s.h = h
	if s.cfg.StopAtEnd {
		if err := s.loadEnds(ctx); err != nil {
			return err
		}
	}
	for {
		fs := s.cl.PollRecords(ctx, 0)
		if ctx.Err() != nil {
			s.cl.AllowRebalance()
			return nil
		}
		var fatal error
		fs.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.Canceled) {
				return
			}
			s.log.Warn("fetch failed", "topic", topic, "partition", p, "error", err)
			if errors.Is(err, kerr.GroupAuthorizationFailed) || errors.Is(err, kerr.TopicAuthorizationFailed) {
				fatal = fmt.Errorf("kafka: %s/%d: %w", topic, p, err)
			}
		})
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			s.deliver(p)
		})
		s.cl.AllowRebalance()
		if fatal != nil {
			return fatal
		}
		if s.cfg.StopAtEnd {
			select {
			case <-s.allEnd:
				return nil
			default:
			}
		}
	}
}

func (s *Source) deliver(p kgo.FetchTopicPartition) {
	id := engine.TaskID{Topic: p.Topic, Partition: p.Partition}
	recs := make([]engine.Record, 0, len(p.Records))
	s.mu.Lock()
	end, bounded := s.ends[id]
	done := s.ended[id]
	s.mu.Unlock()
	if done {
		return
	}
	size := 0
	for _, r := range p.Records {
		if bounded && r.Offset >= end {
			break
		}
		n := len(r.Key) + len(r.Value)
		size += n
		recs = append(recs, engine.Record{
			Key: r.Key, Value: r.Value, Headers: headers(r.Headers),
			Timestamp: r.Timestamp, Offset: r.Offset, Size: n,
		})
	}
	if len(recs) > 0 {
		s.h.Deliver(id, recs)
		s.observe(id, p.HighWatermark, recs[len(recs)-1].Offset+1, size, len(recs))
	}
	if bounded && (len(recs) < len(p.Records) || recs[len(recs)-1].Offset+1 >= end) {
		s.endTask(id)
	}
}

// headers reinterprets franz-go's headers as the engine's: the two types have
// the same fields in the same order, so no per-record copy is needed.
func headers(h []kgo.RecordHeader) []engine.Header {
	if len(h) == 0 {
		return nil
	}
	return unsafe.Slice((*engine.Header)(unsafe.Pointer(&h[0])), len(h))
}

var _ = [1]struct{}{}[unsafe.Sizeof(kgo.RecordHeader{})-unsafe.Sizeof(engine.Header{})]

func (s *Source) observe(id engine.TaskID, hwm, next int64, size, n int) {
	s.mu.Lock()
	avg := s.avg[id]
	cur := float64(size) / float64(n)
	if avg == 0 {
		avg = cur
	} else {
		avg = 0.9*avg + 0.1*cur
	}
	s.avg[id] = avg
	s.mu.Unlock()
	backlog := max(hwm-next, 0)
	part := strconv.Itoa(int(id.Partition))
	s.m.backlog.WithLabelValues(s.cfg.Group, id.Topic, part).Set(float64(backlog))
	s.m.backlogBytes.WithLabelValues(s.cfg.Group, id.Topic, part).Set(float64(backlog) * avg)
}

func (s *Source) endTask(id engine.TaskID) {
	s.mu.Lock()
	if s.ended[id] {
		s.mu.Unlock()
		return
	}
	s.ended[id] = true
	all := len(s.ended) == len(s.ends)
	s.mu.Unlock()
	s.h.End(id)
	if all {
		close(s.allEnd)
	}
}

// loadEnds records the end offset of every partition of the subscription.
func (s *Source) loadEnds(ctx context.Context) error {
	topics := s.cfg.Topics
	if len(s.cfg.TopicRegex) > 0 {
		md, err := s.adm.ListTopics(ctx)
		if err != nil {
			return fmt.Errorf("kafka: list topics: %w", err)
		}
		for _, name := range md.Names() {
			if s.subscribed(name) {
				topics = append(topics, name)
			}
		}
	}
	ends, err := s.adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return fmt.Errorf("kafka: end offsets: %w", err)
	}
	starts, err := s.adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return fmt.Errorf("kafka: start offsets: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ends.Each(func(o kadm.ListedOffset) {
		s.ends[engine.TaskID{Topic: o.Topic, Partition: o.Partition}] = o.Offset
	})
	// A partition whose log starts at its end has nothing to read: mark its
	// end at its start, so that it ends as soon as it is assigned.
	starts.Each(func(o kadm.ListedOffset) {
		id := engine.TaskID{Topic: o.Topic, Partition: o.Partition}
		if s.ends[id] <= o.Offset {
			s.empty[id] = true
		}
	})
	return nil
}

// adjust receives the committed offsets of newly assigned partitions before
// fetching starts; it hands the tasks to the runtime with them.
func (s *Source) adjust(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	var as []engine.Assignment
	for topic, ps := range offsets {
		for p, o := range ps {
			id := engine.TaskID{Topic: topic, Partition: p}
			off := o.EpochOffset().Offset
			if off < 0 {
				off = -1
			}
			as = append(as, engine.Assignment{Task: id, Offset: off})
		}
	}
	s.handOver(ctx, as)
	return offsets, nil
}

func (s *Source) assigned(ctx context.Context, _ *kgo.Client, m map[string][]int32) {
	// Partitions without a committed offset are not passed to adjust; hand
	// them over here. Assign ignores tasks it already has.
	var as []engine.Assignment
	for topic, ps := range m {
		for _, p := range ps {
			as = append(as, engine.Assignment{Task: engine.TaskID{Topic: topic, Partition: p}, Offset: -1})
		}
	}
	s.handOver(ctx, as)
}

func (s *Source) handOver(ctx context.Context, as []engine.Assignment) {
	if len(as) == 0 {
		return
	}
	s.mu.Lock()
	var fresh []engine.Assignment
	for _, a := range as {
		if !s.owned[a.Task] {
			s.owned[a.Task] = true
			fresh = append(fresh, a)
		}
	}
	s.mu.Unlock()
	if len(fresh) == 0 {
		return
	}
	s.h.Assign(ctx, fresh)
	if s.cfg.StopAtEnd {
		for _, a := range fresh {
			s.mu.Lock()
			end, known := s.ends[a.Task]
			empty := s.empty[a.Task]
			s.mu.Unlock()
			if !known || empty || (a.Offset >= 0 && a.Offset >= end) {
				s.endTask(a.Task)
			}
		}
	}
}

func (s *Source) revoked(ctx context.Context, _ *kgo.Client, m map[string][]int32) {
	ids := s.release(m)
	if len(ids) > 0 {
		s.h.Revoke(ctx, ids)
	}
}

// lost: the partitions are gone without a chance to commit. The runtime still
// stops the tasks; its commit will be rejected and the next owner replays.
func (s *Source) lost(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
	s.log.Warn("partitions lost", "partitions", fmt.Sprint(m))
	s.revoked(ctx, cl, m)
}

func (s *Source) release(m map[string][]int32) []engine.TaskID {
	var ids []engine.TaskID
	s.mu.Lock()
	for topic, ps := range m {
		for _, p := range ps {
			id := engine.TaskID{Topic: topic, Partition: p}
			if s.owned[id] {
				delete(s.owned, id)
				ids = append(ids, id)
			}
		}
	}
	s.mu.Unlock()
	return ids
}

// Commit implements engine.Source: it commits positions under the current
// group generation, with meta (the checkpoint key) as each offset's metadata.
func (s *Source) Commit(ctx context.Context, positions []engine.Position, meta string) error {
	offsets := make(map[string]map[int32]kgo.EpochOffset)
	for _, p := range positions {
		if !s.subscribed(p.Task.Topic) {
			continue // another source's task, in a job that reads files too
		}
		if offsets[p.Task.Topic] == nil {
			offsets[p.Task.Topic] = map[int32]kgo.EpochOffset{}
		}
		offsets[p.Task.Topic][p.Task.Partition] = kgo.EpochOffset{Epoch: -1, Offset: p.Offset}
	}
	ctx = kgo.PreCommitFnContext(ctx, func(req *kmsg.OffsetCommitRequest) error {
		for i := range req.Topics {
			for j := range req.Topics[i].Partitions {
				m := meta
				req.Topics[i].Partitions[j].Metadata = &m
			}
		}
		return nil
	})
	var cerr error
	s.cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			cerr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil && cerr == nil {
					cerr = fmt.Errorf("%s/%d: %w", t.Topic, p.Partition, err)
				}
			}
		}
	})
	if cerr != nil {
		return fmt.Errorf("kafka: commit: %w", cerr)
	}
	return nil
}

func (s *Source) subscribed(topic string) bool {
	if slices.Contains(s.cfg.Topics, topic) {
		return true
	}
	for _, re := range s.regexes {
		if re.MatchString(topic) {
			return true
		}
	}
	return false
}

// Pause implements engine.Pauser.
func (s *Source) Pause(ids ...engine.TaskID) { s.cl.PauseFetchPartitions(toMap(ids)) }

// Resume implements engine.Pauser.
func (s *Source) Resume(ids ...engine.TaskID) { s.cl.ResumeFetchPartitions(toMap(ids)) }

func toMap(ids []engine.TaskID) map[string][]int32 {
	m := make(map[string][]int32, len(ids))
	for _, id := range ids {
		m[id.Topic] = append(m[id.Topic], id.Partition)
	}
	return m
}

// Close leaves the group and closes the client. Static members do not leave
// (that is the point of static membership): their partitions wait for them
// for the session timeout.
func (s *Source) Close() error {
	s.cl.Close()
	return nil
}
