package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/backoff"
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
	// Opts are extra franz-go options (SASL, tuning). They are applied last:
	// a kgo.Balancers here replaces the default balancer (see doc.go).
	Opts []kgo.Opt
	// Registerer receives the source metrics (nil: none).
	Registerer prometheus.Registerer
	Logger     *slog.Logger

	// PipelinesOf names the pipelines that read a topic, for the pipeline
	// label of the per-task metrics (nil: the label is empty). The names
	// are joined with commas into one label value, so that a task has one
	// series whatever the number of pipelines reading it.
	PipelinesOf func(topic string) []string
	// OnHealth is called with a reason when the source cannot make
	// progress (unreachable brokers, a missing topic, an authorization
	// failure), and with "" once it can again. It is called from the
	// source's goroutines, one call at a time. The runtime's SetUnready
	// fits it.
	OnHealth func(reason string)
	// MetadataMaxAge is how often metadata is refreshed, which bounds how
	// long a new partition or a new topic matching TopicRegex waits to be
	// consumed (default 10 s).
	MetadataMaxAge time.Duration
	// WatchInterval is how often end offsets are listed for the backlog
	// metrics and the brokers probed for health (default 5 s).
	WatchInterval time.Duration
	// FetchMaxBytes bounds one fetch response (default 16 MiB), and with it
	// what the client buffers per broker. Memory held for a task whose sinks
	// are behind is bounded by the runtime's MaxBufferedBytes plus one fetch.
	FetchMaxBytes int32
	// LeaveOnClose makes Close leave the group even with static membership:
	// for a member removed for good (a scale-down), whose tasks should move
	// at once rather than after the session timeout.
	LeaveOnClose bool
}

// Source is a Kafka group consumer feeding engine tasks.
type Source struct {
	cfg Config
	cl  *kgo.Client
	adm *kadm.Client
	h   engine.Handler
	// batcher is h's engine.Batcher, nil when it has none: deliver then
	// allocates each batch.
	batcher engine.Batcher
	log     *slog.Logger
	m       *metrics

	mu      sync.Mutex // guards ends, ended, empty, owned, meta, allDone, revokes
	ends    map[engine.TaskID]int64
	ended   map[engine.TaskID]bool
	empty   map[engine.TaskID]bool
	owned   map[engine.TaskID]*taskStats
	meta    map[engine.TaskID]string // commit metadata from the last offset fetch
	allDone bool
	revokes int // tasks revoked from this member, for tests and logs
	allEnd  chan struct{}
	// started is closed by Run once h is set. franz-go joins the group as
	// soon as the client exists, so a rebalance callback can come before
	// Run; the callbacks wait for it (see handler).
	started chan struct{}

	health  health
	regexes []*regexp.Regexp
	now     func() time.Time
}

// New builds the client. franz-go starts joining the group at once, but
// tasks are handed over only once Run has started.
func New(cfg Config) (*Source, error) {
	if len(cfg.Brokers) == 0 || cfg.Group == "" {
		return nil, errors.New("kafka: brokers and group are required")
	}
	if len(cfg.Topics) == 0 && len(cfg.TopicRegex) == 0 {
		return nil, errors.New("kafka: no topics to consume")
	}
	switch cfg.Start {
	case "", "earliest", "latest":
	default:
		return nil, fmt.Errorf("kafka: start %q: want earliest or latest", cfg.Start)
	}
	if cfg.MetadataMaxAge <= 0 {
		cfg.MetadataMaxAge = 10 * time.Second
	}
	if cfg.FetchMaxBytes <= 0 {
		cfg.FetchMaxBytes = 16 << 20
	}
	if cfg.WatchInterval <= 0 {
		cfg.WatchInterval = 5 * time.Second
	}
	s := &Source{
		cfg: cfg, log: cfg.Logger,
		ends: map[engine.TaskID]int64{}, ended: map[engine.TaskID]bool{}, empty: map[engine.TaskID]bool{}, owned: map[engine.TaskID]*taskStats{}, meta: map[engine.TaskID]string{},
		allEnd: make(chan struct{}), started: make(chan struct{}), now: time.Now,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("source", "kafka", "group", cfg.Group)
	s.health = health{report: cfg.OnHealth, log: s.log, reasons: map[string]string{}}
	s.m = newMetrics(cfg.Registerer)
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
		kgo.OnOffsetsFetched(s.fetched),
		kgo.FetchMaxWait(500 * time.Millisecond),
		kgo.FetchMaxBytes(cfg.FetchMaxBytes),
		kgo.FetchMaxPartitionBytes(min(cfg.FetchMaxBytes, 1<<20)),
		kgo.BrokerMaxReadBytes(max(cfg.FetchMaxBytes+1<<20, 100<<20)),
		kgo.MetadataMaxAge(cfg.MetadataMaxAge),
		kgo.MetadataMinAge(min(cfg.MetadataMaxAge, time.Second)),
		kgo.Balancers(&balancer{rates: s.rates}),
		kgo.WithPools(&recordPool{}),
	}
	if len(cfg.TopicRegex) > 0 {
		opts = append(opts, kgo.ConsumeTopics(cfg.TopicRegex...), kgo.ConsumeRegex())
	} else {
		opts = append(opts, kgo.ConsumeTopics(cfg.Topics...))
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

// Run implements engine.Source. It polls until ctx ends (or, for a bounded
// job, until the group has read every task to its end) and returns nil; bad
// input (unreachable brokers, missing topics, authorization failures) is
// logged, reported through Config.OnHealth and retried with backoff, never
// returned, so that a misconfigured job waits without losing its position
// instead of crash-looping.
func (s *Source) Run(ctx context.Context, h engine.Handler) error {
	s.h = h
	s.batcher, _ = h.(engine.Batcher)
	var wg sync.WaitGroup
	defer wg.Wait()
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	if s.cfg.StopAtEnd {
		for attempt := 0; ; attempt++ {
			err := s.loadEnds(wctx)
			if err == nil {
				s.health.set("brokers", "")
				break
			}
			if ctx.Err() != nil {
				return nil
			}
			if _, ok := errors.AsType[*MissingTopicError](err); ok {
				// A backfill of a topic that does not exist can never
				// end: say so instead of waiting for it forever.
				return err
			}
			s.health.set("brokers", err.Error())
			if !backoff.Sleep(ctx, retryPause.Delay(attempt)) {
				return nil
			}
		}
	}
	// Only now may rebalance callbacks hand tasks over: with stop_at: end a
	// task assigned before its end offset is known would end at once.
	close(s.started)
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.watch(wctx)
	}()
	// A poll waits for records; a bounded job whose tasks all ended at
	// assignment (a re-run, an empty topic) gets none, so the end of the
	// backfill must interrupt the poll.
	pctx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	if s.cfg.StopAtEnd {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-s.allEnd:
				stopPoll()
			case <-pctx.Done():
			}
		}()
	}
	failures := 0
	for {
		fs := s.cl.PollRecords(pctx, 0)
		if pctx.Err() != nil {
			s.cl.AllowRebalance()
			return nil
		}
		failed := false
		fs.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.Canceled) {
				return
			}
			if s.fetchFailed(topic, p, err) {
				failed = true
				return
			}
			if s.fenced(err) {
				return // reported through health, once
			}
			s.log.Warn("fetch failed; franz-go retries", "topic", topic, "partition", p, "error", err)
		})
		delivered := false
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			delivered = true
			s.deliver(p)
		})
		s.cl.AllowRebalance()
		if delivered && !failed {
			s.health.set("fetch", "")
		}
		if failed {
			// Back off before polling again: the error repeats at every
			// poll until an operator fixes the ACLs.
			if !backoff.Sleep(ctx, retryPause.Delay(failures)) {
				return nil
			}
			failures++
		} else {
			failures = 0
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

// deliver hands a task the records of one fetched partition, as one
// engine.Record slice (from the runtime's engine.Batcher when it has one),
// and recycles each kgo.Record into recordPool once copied: the key, value
// and headers stay valid, as they alias the fetch response, not the
// kgo.Record.
func (s *Source) deliver(p kgo.FetchTopicPartition) {
	defer recycle(p.Records)
	id := engine.TaskID{Topic: p.Topic, Partition: p.Partition}
	s.mu.Lock()
	end, bounded := s.ends[id]
	done := s.ended[id]
	s.mu.Unlock()
	if done {
		return
	}
	n := len(p.Records)
	if bounded {
		for n > 0 && p.Records[n-1].Offset >= end {
			n--
		}
	}
	if n > 0 {
		var recs []engine.Record
		if s.batcher != nil {
			recs = s.batcher.Batch(n)[:n]
		} else {
			recs = make([]engine.Record, n)
		}
		size := 0
		for i, r := range p.Records[:n] {
			k := len(r.Key) + len(r.Value)
			size += k
			recs[i] = engine.Record{
				Key: r.Key, Value: r.Value, Headers: headers(r.Headers),
				Timestamp: r.Timestamp, Offset: r.Offset, Size: k,
			}
		}
		first := recs[0].Offset
		s.h.Deliver(id, recs) // recs belongs to the runtime from here on
		s.observe(id, p.HighWatermark, first, size, n)
	}
	if bounded && (n < len(p.Records) || (n > 0 && p.Records[n-1].Offset+1 >= end)) {
		s.endTask(id)
	}
}

// recycle gives the records' slabs back to recordPool (see pool.go).
func recycle(recs []*kgo.Record) {
	for _, r := range recs {
		r.Recycle()
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

// observe accounts n records of size bytes from offset first on, with the
// partition's high watermark from the same fetch.
func (s *Source) observe(id engine.TaskID, hwm, first int64, size, n int) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := s.owned[id]
	if ts == nil {
		return // revoked while the batch was delivered
	}
	cur := float64(size) / float64(n)
	if ts.avg == 0 {
		ts.avg = cur
	} else {
		ts.avg = 0.9*ts.avg + 0.1*cur
	}
	ts.addBytes(size, now)
	if ts.committed < 0 {
		ts.committed = first // nothing committed: the backlog counts from where reading started
	}
	ts.end = max(ts.end, hwm)
	ts.in.Add(float64(n))
	ts.bytes.Add(float64(size))
	r, b := ts.backlog()
	s.m.backlog.WithLabelValues(ts.labels...).Set(float64(r))
	s.m.backlogBytes.WithLabelValues(ts.labels...).Set(float64(b))
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
	// Nothing past the end is delivered: stop fetching it rather than
	// fetch and drop what producers write until the whole job ends. An
	// ended task is never read again by this member, so it stays paused.
	s.cl.PauseFetchPartitions(toMap([]engine.TaskID{id}))
	s.h.End(id)
	if all {
		s.finishAll()
	}
}

// MissingTopicError is what Run returns for a bounded job (StopAtEnd) whose
// topics do not exist: it can never read them to an end.
type MissingTopicError struct {
	Topics  []string
	Brokers []string
}

func (e *MissingTopicError) Error() string {
	what := fmt.Sprintf("topic %q does not exist", e.Topics[0])
	if len(e.Topics) > 1 {
		what = fmt.Sprintf("topics %q do not exist", e.Topics)
	}
	return fmt.Sprintf("kafka: %s on brokers %s; a stop_at: end job reads only topics that exist when it starts",
		what, strings.Join(e.Brokers, ","))
}

// loadEnds records the end offset of every partition of the subscription. A
// listed topic that does not exist is a *MissingTopicError.
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
	var missing []string
	var firstErr error
	ends.Each(func(o kadm.ListedOffset) {
		switch {
		case errors.Is(o.Err, kerr.UnknownTopicOrPartition) && o.Partition < 0:
			missing = append(missing, o.Topic)
		case o.Err != nil && firstErr == nil:
			firstErr = fmt.Errorf("kafka: end offset of %s/%d: %w", o.Topic, o.Partition, o.Err)
		}
	})
	if len(missing) > 0 {
		slices.Sort(missing)
		return &MissingTopicError{Topics: missing, Brokers: s.cfg.Brokers}
	}
	if firstErr != nil {
		return firstErr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ends.Each(func(o kadm.ListedOffset) {
		s.ends[engine.TaskID{Topic: o.Topic, Partition: o.Partition}] = o.Offset
	})
	if len(s.ends) == 0 && !s.allDone {
		// A regex that matches no topic: nothing to read, the backfill is
		// complete before it starts.
		s.allDone = true
		close(s.allEnd)
	}
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
// handler waits for Run to have set the Handler; false means the client is
// closing and the callback should do nothing.
func (s *Source) handler(ctx context.Context) bool {
	select {
	case <-s.started:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *Source) adjust(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	if !s.handler(ctx) {
		return offsets, ctx.Err()
	}
	var as []engine.Assignment
	for topic, ps := range offsets {
		for p, o := range ps {
			id := engine.TaskID{Topic: topic, Partition: p}
			off := o.EpochOffset().Offset
			if off < 0 {
				off = -1
			}
			s.mu.Lock()
			meta := s.meta[id]
			s.mu.Unlock()
			if off < 0 {
				meta = ""
			}
			as = append(as, engine.Assignment{Task: id, Offset: off, Meta: meta})
		}
	}
	s.handOver(ctx, as)
	return offsets, nil
}

func (s *Source) assigned(ctx context.Context, _ *kgo.Client, m map[string][]int32) {
	if !s.handler(ctx) {
		return
	}
	s.health.set("group", "") // joined again, if it had been fenced
	// Nothing to hand over yet: franz-go calls this before it fetches the
	// committed offsets, and adjust, which it calls next with the offsets of
	// every added partition (the reset offset for those with no commit), hands
	// the tasks over with their committed offsets and metadata.
}

// fetched records the metadata committed with each offset: the key of the
// checkpoint the offset belongs to, which adjust passes on with the task.
func (s *Source) fetched(_ context.Context, _ *kgo.Client, resp *kmsg.OffsetFetchResponse) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	put := func(topic string, p int32, meta *string) {
		if meta != nil && *meta != "" {
			s.meta[engine.TaskID{Topic: topic, Partition: p}] = *meta
		}
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			put(t.Topic, p.Partition, p.Metadata)
		}
	}
	for _, g := range resp.Groups {
		for _, t := range g.Topics {
			for _, p := range t.Partitions {
				put(t.Topic, p.Partition, p.Metadata)
			}
		}
	}
	return nil
}

func (s *Source) handOver(ctx context.Context, as []engine.Assignment) {
	if len(as) == 0 {
		return
	}
	s.mu.Lock()
	var fresh []engine.Assignment
	for _, a := range as {
		if s.owned[a.Task] == nil {
			s.owned[a.Task] = s.newTaskStats(a.Task, a.Offset)
			fresh = append(fresh, a)
		}
	}
	s.mu.Unlock()
	if len(fresh) == 0 {
		return
	}
	s.m.assigned.WithLabelValues(s.cfg.Group).Add(float64(len(fresh)))
	s.health.set("fetch", "") // the group let us in
	s.health.set("group", "")
	s.h.Assign(ctx, fresh)
	if s.cfg.StopAtEnd {
		for _, a := range fresh {
			s.mu.Lock()
			end, known := s.ends[a.Task]
			empty := s.empty[a.Task]
			s.mu.Unlock()
			// A task with no committed offset and start: latest starts at
			// its end: nothing of the backfill is left for it.
			latest := a.Offset < 0 && s.cfg.Start == "latest"
			if !known || empty || latest || (a.Offset >= 0 && a.Offset >= end) {
				s.endTask(a.Task)
			}
		}
	}
}

func (s *Source) revoked(ctx context.Context, _ *kgo.Client, m map[string][]int32) {
	if !s.handler(ctx) {
		return
	}
	ids := s.release(m)
	if len(ids) > 0 {
		s.h.Revoke(ctx, ids)
	}
}

// lost: the partitions are gone without a chance to commit. The runtime still
// stops the tasks; its commit will be rejected and the next owner replays.
// franz-go also calls it with no partitions at every failed rejoin of a
// fenced member (every few seconds): that is reported once, as the fenced
// health reason, not logged each time.
func (s *Source) lost(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
	if len(m) == 0 {
		return
	}
	s.log.Warn("partitions lost", "partitions", fmt.Sprint(m))
	s.revoked(ctx, cl, m)
}

func (s *Source) release(m map[string][]int32) []engine.TaskID {
	var ids []engine.TaskID
	s.mu.Lock()
	for topic, ps := range m {
		for _, p := range ps {
			id := engine.TaskID{Topic: topic, Partition: p}
			if ts := s.owned[id]; ts != nil {
				s.forgetLocked(ts)
				delete(s.owned, id)
				ids = append(ids, id)
			}
		}
	}
	s.revokes += len(ids)
	s.mu.Unlock()
	if len(ids) > 0 {
		s.m.revoked.WithLabelValues(s.cfg.Group).Add(float64(len(ids)))
	}
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
	s.mu.Lock()
	for _, p := range positions {
		ts := s.owned[p.Task]
		if ts == nil {
			continue // a revoked task's final commit
		}
		if ts.committed >= 0 && p.Offset > ts.committed {
			ts.out.Add(float64(p.Offset - ts.committed))
		}
		ts.committed = p.Offset
		if p.Watermark > 0 {
			ts.watermark = p.Watermark
		}
	}
	s.publishLocked()
	s.mu.Unlock()
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
	if s.cfg.LeaveOnClose && s.cfg.InstanceID != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := s.adm.LeaveGroup(ctx, kadm.LeaveGroup(s.cfg.Group).InstanceIDs(s.cfg.InstanceID).Reason("scaled down"))
		if err != nil {
			s.log.Warn("static member did not leave the group; its tasks move after the session timeout", "error", err)
		}
	}
	s.cl.Close()
	return nil
}
