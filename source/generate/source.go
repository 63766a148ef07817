package generate

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/avro"
)

// Fingerprints (engine/avro.Fingerprint) of the traffic schemas, traffic.avsc
// and traffic_v2.avsc: a generate source with one of them as its schema
// produces realistic traffic (Traffic) instead of random values.
const (
	TrafficFingerprint   uint64 = 0x3486404ff1942029
	TrafficV2Fingerprint uint64 = 0x40063941639b1d96
)

// DefaultBatch is the most records handed to Deliver at once.
const DefaultBatch = 1000

// DefaultTopic names the task of a source built without WithTask.
const DefaultTopic = "generate"

// Epoch is where the timestamps of a seeded source (and of a Traffic
// generator without Start) begin, in Unix microseconds:
// 2026-01-01T00:00:00Z. Two runs with one seed produce the same records.
const Epoch int64 = 1_767_225_600_000_000

// Datums appends the binary encoding of one generated datum per call.
type Datums interface {
	AppendAvro(dst []byte) []byte
}

// NewDatums returns the generator of datums of schema: the traffic
// generator for the traffic schemas (by fingerprint), Random for any other.
// Timestamps start at start.
func NewDatums(schema *engine.Type, seed int64, start time.Time) Datums {
	switch avro.Fingerprint(schema) {
	case TrafficFingerprint:
		return NewTraffic(seed, WithStart(start))
	case TrafficV2Fingerprint:
		return v2{NewTraffic(seed, WithStart(start))}
	}
	return NewRandom(schema, seed, start.UnixMicro())
}

type v2 struct{ *Traffic }

func (g v2) AppendAvro(dst []byte) []byte { return g.AppendAvroV2(dst) }

// Source is an engine.Source of generated records: one task whose records
// are datums of a schema, at a rate, bounded by a count or not.
type Source struct {
	schema *engine.Type
	rate   int
	seed   int64
	count  int64
	batch  int
	task   engine.TaskID
	start  int64
	meta   string

	mu     sync.Mutex // guards paused and wake
	paused bool
	wake   chan struct{} // closed by Resume

	// CommitLog keeps what the runtime commits: generated records have
	// nowhere to commit to.
	engine.CommitLog
}

// Option configures New.
type Option func(*options)

type options struct {
	rate  int
	seed  int64
	count int64
	batch int
	task  engine.TaskID
	start int64 // -1: from the first record
	meta  string
}

// WithRate sets the records generated per second (default 0: as fast as the
// runtime takes them, which with a slow sink means backpressure pauses); a
// negative n means 0.
func WithRate(n int) Option { return func(o *options) { o.rate = n } }

// WithSeed seeds the generator (default 0: a seed from the clock, and
// timestamps from now). With a seed other than 0 the records are the same on
// every run, timestamps included: they start at Epoch.
func WithSeed(n int64) Option { return func(o *options) { o.seed = n } }

// WithCount bounds the source to n records, after which it ends its task
// (default 0: unbounded); a negative n means 0.
func WithCount(n int64) Option { return func(o *options) { o.count = n } }

// WithBatch sets the most records one Deliver call carries (default
// DefaultBatch); n below 1 means 1.
func WithBatch(n int) Option { return func(o *options) { o.batch = n } }

// WithTask names the source's task (default topic DefaultTopic, partition
// 0): a job with several generate sources gives each its own.
func WithTask(id engine.TaskID) Option { return func(o *options) { o.task = id } }

// WithStartAt resumes at offset (the next record to deliver) with the
// checkpoint key meta, as committed before (default: from the first record).
// The records before it are generated and dropped, so that a seeded source
// resumes where it stood.
func WithStartAt(offset int64, meta string) Option {
	return func(o *options) { o.start, o.meta = offset, meta }
}

// New returns a source of datums of schema, which must be a record.
func New(schema *engine.Type, opts ...Option) (*Source, error) {
	if schema == nil || schema.Kind != engine.KindRecord {
		return nil, fmt.Errorf("generate source: the schema must be a record")
	}
	o := options{batch: DefaultBatch, task: engine.TaskID{Topic: DefaultTopic}, start: -1}
	for _, opt := range opts {
		opt(&o)
	}
	return &Source{
		schema: schema,
		rate:   max(o.rate, 0),
		seed:   o.seed,
		count:  max(o.count, 0),
		batch:  max(1, o.batch),
		task:   o.task,
		start:  o.start,
		meta:   o.meta,
		wake:   make(chan struct{}),
	}, nil
}

// Task is the source's one task.
func (s *Source) Task() engine.TaskID { return s.task }

// Run assigns the task and delivers generated records, Offset = the
// record's index, paced to the rate. A bounded source ends its task after
// count records and returns nil; an unbounded one returns nil once ctx ends.
func (s *Source) Run(ctx context.Context, h engine.Handler) error {
	h.Assign(ctx, []engine.Assignment{{Task: s.task, Offset: s.start, Meta: s.meta}})
	seed, start := s.seed, time.UnixMicro(Epoch).UTC()
	if seed == 0 {
		start = time.Now()
		seed = start.UnixNano()
	}
	g := NewDatums(s.schema, seed, start)
	from := max(s.start, 0)
	var off int64
	for ; off < from && (s.count == 0 || off < s.count); off++ {
		g.AppendAvro(nil)
	}
	t0 := time.Now()
	var sent int64 // records delivered since t0, for the pacing
	timer := time.NewTimer(0)
	defer timer.Stop()
	for s.count == 0 || off < s.count {
		if !s.waitResumed(ctx) {
			return nil
		}
		n := s.batch
		if s.count > 0 {
			n = int(min(int64(n), s.count-off))
		}
		if s.rate > 0 {
			// At most a twentieth of a second's records at once, each batch
			// waiting for the time its first record is due.
			n = min(n, max(1, s.rate/20))
			due := t0.Add(time.Duration(float64(sent) / float64(s.rate) * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				timer.Reset(d)
				select {
				case <-ctx.Done():
					return nil
				case <-timer.C:
				}
			}
		} else if ctx.Err() != nil {
			return nil
		}
		batch := make([]engine.Record, n) // the runtime keeps what it is given
		now := time.Now()
		buf := make([]byte, 0, n*256) // one allocation for the batch's records
		for i := range batch {
			end := len(buf)
			buf = g.AppendAvro(buf)
			batch[i] = engine.Record{Value: buf[end:len(buf):len(buf)], Offset: off, Timestamp: now}
			off++
		}
		h.Deliver(s.task, batch)
		sent += int64(n)
	}
	h.End(s.task)
	return nil
}

// waitResumed waits while the task is paused; false when ctx ended.
func (s *Source) waitResumed(ctx context.Context) bool {
	for {
		s.mu.Lock()
		paused, wake := s.paused, s.wake
		s.mu.Unlock()
		if !paused {
			return ctx.Err() == nil
		}
		select {
		case <-ctx.Done():
			return false
		case <-wake:
		}
	}
}

// Pause stops generating until Resume (engine.Pauser): the runtime pauses a
// task whose sinks are behind.
func (s *Source) Pause(tasks ...engine.TaskID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range tasks {
		if t == s.task {
			s.paused = true
		}
	}
}

// Resume undoes Pause.
func (s *Source) Resume(tasks ...engine.TaskID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range tasks {
		if t == s.task && s.paused {
			s.paused = false
			close(s.wake)
			s.wake = make(chan struct{})
		}
	}
}
