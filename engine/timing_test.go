package engine_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sluicehq/sluice/engine"
)

// The runtime's timing rules (the adaptive bundle rule, max_wait, task
// isolation, pause before resume), each run in a synctest bubble: time.Now
// and every timer of the runtime are the bubble's clock, which moves only
// when every goroutine is blocked, so a flush that "takes" 20 ms takes 20 ms
// exactly and a latency is a number, not a sample on a loaded machine. The
// Kafka source keeps one timed smoke test of each rule against kfake.

// clockSink acknowledges a flush after cost (or costs[task]) of the bubble's
// time, and records when each row was acknowledged and each flush's size.
type clockSink struct {
	cost  time.Duration
	costs map[string]time.Duration // by topic, overriding cost
	// gate, when set, is waited on by every flush of its topic's writer.
	gate map[string]chan struct{}

	mu    sync.Mutex
	acked map[string]time.Time // row value → when its flush returned
	sizes map[string][]int     // topic → rows per flush
}

func newClockSink(cost time.Duration) *clockSink {
	return &clockSink{cost: cost, costs: map[string]time.Duration{}, gate: map[string]chan struct{}{},
		acked: map[string]time.Time{}, sizes: map[string][]int{}}
}

type clockWriter struct {
	s       *clockSink
	topic   string
	pending []string
}

func (s *clockSink) Open(_ context.Context, id engine.TaskID) (engine.Writer, error) {
	return &clockWriter{s: s, topic: id.Topic}, nil
}
func (s *clockSink) Close(context.Context) error { return nil }

func (w *clockWriter) Write(row *engine.Row) error {
	w.pending = append(w.pending, string(row.Str(0)))
	return nil
}

func (w *clockWriter) Flush(ctx context.Context) error {
	if g := w.s.gate[w.topic]; g != nil {
		select {
		case <-g:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	cost, ok := w.s.costs[w.topic]
	if !ok {
		cost = w.s.cost
	}
	time.Sleep(cost)
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	now := time.Now()
	for _, v := range w.pending {
		w.s.acked[v] = now
	}
	if len(w.pending) > 0 {
		w.s.sizes[w.topic] = append(w.s.sizes[w.topic], len(w.pending))
	}
	w.pending = w.pending[:0]
	return nil
}

func (w *clockWriter) Close(context.Context) error { return nil }

func (s *clockSink) ackedAt(v string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.acked[v]
	return at, ok
}

func (s *clockSink) flushSizes(topic string) []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sizes[topic])
}

// pauseSource assigns its tasks and then only waits: the test delivers
// through the runtime. It records the Pause and Resume calls in order.
type pauseSource struct {
	tasks    []engine.TaskID
	assigned chan struct{}

	mu    sync.Mutex
	calls []string // "pause t" or "resume t"
}

func (s *pauseSource) Run(ctx context.Context, h engine.Handler) error {
	var as []engine.Assignment
	for _, id := range s.tasks {
		as = append(as, engine.Assignment{Task: id, Offset: -1})
	}
	h.Assign(ctx, as)
	close(s.assigned)
	<-ctx.Done()
	return nil
}

func (s *pauseSource) Commit(context.Context, []engine.Position, string) error { return nil }

func (s *pauseSource) Pause(ids ...engine.TaskID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		s.calls = append(s.calls, "pause "+id.Topic)
	}
}

func (s *pauseSource) Resume(ids ...engine.TaskID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		s.calls = append(s.calls, "resume "+id.Topic)
	}
}

func (s *pauseSource) callsOf(topic string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, c := range s.calls {
		if c == "pause "+topic || c == "resume "+topic {
			out = append(out, c)
		}
	}
	return out
}

// timed is a runtime running in the current bubble on tasks of the given
// topics (partition 0), one pipeline reading all of them.
type timed struct {
	rt   *engine.Runtime
	src  *pauseSource
	sink *clockSink
	next map[string]int64 // next offset per topic
	stop func()
}

// timedJob is what a test varies.
type timedJob struct {
	sink        *clockSink
	dec         engine.Decoder // lineDecoder when nil
	maxRecords  int
	maxWait     time.Duration
	maxBuffered int // Job.MaxBufferedBytes; 0 for the default
	topics      []string
}

func startTimed(t *testing.T, j timedJob) *timed {
	t.Helper()
	sink, topics := j.sink, j.topics
	if j.dec == nil {
		j.dec = lineDecoder{}
	}
	src := &pauseSource{assigned: make(chan struct{})}
	for _, tp := range topics {
		src.tasks = append(src.tasks, engine.TaskID{Topic: tp})
	}
	p := &engine.Pipeline{
		Name: "p", Reads: func(string) bool { return true },
		Decoder: j.dec, Transform: passThrough{},
		Sinks: []engine.NamedSink{{Name: "clock", Sink: sink}}, MaxRecords: j.maxRecords, MaxWait: j.maxWait,
	}
	// Checkpoints cut bundles; an interval of a day keeps them out of the
	// rules under test.
	rt, err := engine.New(&engine.Job{Name: "j", Pod: "p0", Pipelines: []*engine.Pipeline{p}, Source: src, Store: &memStore{},
		Interval: 24 * time.Hour, MaxBufferedBytes: j.maxBuffered})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	<-src.assigned
	tm := &timed{rt: rt, src: src, sink: sink, next: map[string]int64{}}
	tm.stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	return tm
}

// deliver hands n records of 100 bytes to topic's task, named
// "<topic>-<offset>", and returns their names.
func (tm *timed) deliver(topic string, n int) []string {
	recs := make([]engine.Record, n)
	names := make([]string, n)
	for i := range recs {
		off := tm.next[topic]
		tm.next[topic]++
		names[i] = fmt.Sprintf("%s-%d", topic, off)
		recs[i] = engine.Record{Value: []byte(names[i]), Offset: off, Timestamp: time.Now(), Size: 100}
	}
	tm.rt.Deliver(engine.TaskID{Topic: topic}, recs)
	return names
}

// latency is how long after now the rows named were acknowledged, at most
// (or -1 when one was not).
func (tm *timed) latency(sent time.Time, names []string) time.Duration {
	var worst time.Duration
	for _, n := range names {
		at, ok := tm.sink.ackedAt(n)
		if !ok {
			return -1
		}
		worst = max(worst, at.Sub(sent))
	}
	return worst
}

// A quiet task (one record every 2 s) closes each bundle as soon as its
// input is idle: minOpen (5 ms) after its first record, or ten times the
// task's recent flush time when that is longer, plus the flush; never
// max_wait (10 s).
func TestQuietTaskClosesItsBundleAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const cost = 10 * time.Millisecond
		tm := startTimed(t, timedJob{sink: newClockSink(cost), maxRecords: 10_000, maxWait: 10 * time.Second, topics: []string{"quiet"}})
		defer tm.stop()
		for i := range 10 {
			sent := time.Now()
			names := tm.deliver("quiet", 1)
			time.Sleep(2 * time.Second)
			got := tm.latency(sent, names)
			if i == 0 && got != 5*time.Millisecond+cost {
				t.Errorf("first quiet record acknowledged after %v, want %v (minOpen + one flush)", got, 5*time.Millisecond+cost)
			}
			if got < 0 || got > 10*cost+cost {
				t.Errorf("quiet record %d acknowledged after %v, want at most %v (ten flushes + one)", i, got, 11*cost)
			}
		}
		if sizes := tm.sink.flushSizes("quiet"); len(sizes) != 10 || slices.Max(sizes) != 1 {
			t.Errorf("flush sizes %v, want one record each", sizes)
		}
	})
}

// A task that is behind (its sink takes 50 ms a flush while 10 records
// arrive every millisecond) finds more input waiting whenever it has
// processed what it took, so it fills its bundles to max_records.
func TestTaskBehindFillsBundles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tm := startTimed(t, timedJob{sink: newClockSink(50 * time.Millisecond), maxRecords: 1000, maxWait: 10 * time.Second, topics: []string{"behind"}})
		defer tm.stop()
		for range 1000 {
			tm.deliver("behind", 10)
			time.Sleep(time.Millisecond)
		}
		time.Sleep(time.Second)
		sizes := tm.sink.flushSizes("behind")
		// The first bundles are smaller: the flush cost's moving average
		// starts at zero.
		for i, n := range sizes[4 : len(sizes)-1] {
			if n != 1000 {
				t.Errorf("bundle %d holds %d records, want max_records (1000); sizes %v", i+4, n, sizes)
			}
		}
	})
}

// max_wait bounds a bundle that the adaptive rule would keep open longer
// (ten flushes of 10 ms exceed max_wait) and that never reaches
// max_records.
func TestMaxWaitBoundsABundle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			maxWait = 50 * time.Millisecond
			cost    = 10 * time.Millisecond
		)
		tm := startTimed(t, timedJob{sink: newClockSink(cost), maxRecords: 10_000, maxWait: maxWait, topics: []string{"steady"}})
		defer tm.stop()
		type sent struct {
			at    time.Time
			names []string
		}
		var all []sent
		for range 500 {
			all = append(all, sent{time.Now(), tm.deliver("steady", 1)})
			time.Sleep(time.Millisecond)
		}
		time.Sleep(time.Second)
		var worst time.Duration
		for _, s := range all {
			l := tm.latency(s.at, s.names)
			if l < 0 {
				t.Fatalf("%v never acknowledged", s.names)
			}
			worst = max(worst, l)
		}
		// A record that arrives during a flush opens the next bundle
		// when that flush returns: max_wait plus two flushes.
		if worst > maxWait+2*cost {
			t.Errorf("a record waited %v, want at most max_wait (%v) + two flushes", worst, maxWait)
		}
		sizes := tm.sink.flushSizes("steady")
		for i, n := range sizes[3 : len(sizes)-1] {
			if n < 50 || n > 61 {
				t.Errorf("bundle %d holds %d records, want 50 to 61 (max_wait and a flush of input, ends included); sizes %v", i+3, n, sizes)
			}
		}
	})
}

// costlyDecoder spends 2 ms of the bubble's time on each record, as a
// decoder spends CPU.
type costlyDecoder struct{ lineDecoder }

func (d costlyDecoder) Decode(rec *engine.Record, row *engine.Row) error {
	time.Sleep(2 * time.Millisecond)
	return d.lineDecoder.Decode(rec, row)
}

// A task that has caught up closes its bundle even when input arrived
// while it processed the previous record: with records every 3 ms that
// each take 2 ms to decode, the last one is acknowledged a few
// milliseconds after it arrived. (The rule used to count input taken in
// the same turn as activity, and then waited for max_wait.)
func TestBundleClosesWhenInputStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tm := startTimed(t, timedJob{sink: newClockSink(0), dec: costlyDecoder{}, maxRecords: 10_000, maxWait: 10 * time.Second, topics: []string{"burst"}})
		defer tm.stop()
		var (
			last []string
			sent time.Time
		)
		for range 20 {
			sent = time.Now()
			last = tm.deliver("burst", 1)
			time.Sleep(3 * time.Millisecond)
		}
		time.Sleep(time.Second)
		switch got, want := tm.latency(sent, last), 10*time.Millisecond; {
		case got < 0:
			t.Errorf("the last record is not acknowledged a second after it arrived, want within %v", want)
		case got > want:
			t.Errorf("the last record acknowledged after %v, want at most %v", got, want)
		}
	})
}

// A task that keeps up closes a bundle each time it catches up, but never
// sooner than ten times its recent flush time: flushing costs it about a
// tenth of its time at most.
func TestFlushCostSetsTheShortestBundle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tm := startTimed(t, timedJob{sink: newClockSink(20 * time.Millisecond), maxRecords: 10_000, maxWait: 10 * time.Second, topics: []string{"paced"}})
		defer tm.stop()
		for range 300 { // 3 s, one record every 10 ms: idle between records
			tm.deliver("paced", 1)
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(time.Second)
		sizes := tm.sink.flushSizes("paced")
		if len(sizes) < 5 {
			t.Fatalf("flush sizes %v, want many bundles", sizes)
		}
		// Once the flush cost's moving average has settled (20 ms), a
		// bundle stays open at least 200 ms: 20 records.
		for i, n := range sizes[len(sizes)/2 : len(sizes)-1] {
			if n < 19 {
				t.Errorf("bundle %d of %v holds %d records, want at least 19 (200 ms of input)", len(sizes)/2+i, sizes, n)
			}
		}
		if sum := 0; true {
			for _, n := range sizes {
				sum += n
			}
			if sum != 300 {
				t.Errorf("%d records acknowledged, want 300", sum)
			}
		}
	})
}

// One task whose sink takes 30 s a flush delays no other: a quiet task's
// records are acknowledged exactly as fast as when it runs alone.
func TestSlowTaskDoesNotDelayAnother(t *testing.T) {
	quiet := func(withSlow bool) []time.Duration {
		var lat []time.Duration
		synctest.Test(t, func(t *testing.T) {
			sink := newClockSink(time.Millisecond)
			sink.costs["slow"] = 30 * time.Second
			tm := startTimed(t, timedJob{sink: sink, maxRecords: 10_000, maxWait: 10 * time.Second, topics: []string{"slow", "quiet"}})
			defer tm.stop()
			for range 10 {
				if withSlow {
					tm.deliver("slow", 100)
				}
				sent := time.Now()
				names := tm.deliver("quiet", 1)
				time.Sleep(time.Second)
				lat = append(lat, tm.latency(sent, names))
			}
			if withSlow {
				time.Sleep(time.Minute)
				if got := tm.sink.flushSizes("slow"); len(got) == 0 {
					t.Errorf("the slow task flushed nothing")
				}
			}
		})
		return lat
	}
	alone, beside := quiet(false), quiet(true)
	if !slices.Equal(alone, beside) {
		t.Errorf("quiet latencies beside a slow task %v, want those alone %v", beside, alone)
	}
}

// Backpressure pauses the task whose sink is behind once it holds more
// than MaxBufferedBytes, never another task, and resumes it once it has
// taken its input; every Resume follows the Pause it undoes, so a task
// never ends up paused for good.
func TestBackpressurePausesOnlyTheTaskBehind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := newClockSink(time.Millisecond)
		stalled := make(chan struct{})
		sink.gate["stalled"] = stalled
		tm := startTimed(t, timedJob{sink: sink, maxRecords: 10, maxWait: 10 * time.Second, maxBuffered: 1000, topics: []string{"stalled", "live"}})
		defer tm.stop()
		var worst time.Duration
		for i := range 200 {
			if i == 100 {
				close(stalled) // the destination is back after 10 s
			}
			tm.deliver("stalled", 3) // 300 bytes
			sent := time.Now()
			names := tm.deliver("live", 3)
			time.Sleep(100 * time.Millisecond)
			worst = max(worst, tm.latency(sent, names))
			if i == 99 {
				if got, want := tm.src.callsOf("stalled"), []string{"pause stalled"}; !slices.Equal(got, want) {
					t.Fatalf("while its sink stalls, the task's calls are %v, want %v", got, want)
				}
			}
		}
		time.Sleep(time.Second)
		if worst > 11*time.Millisecond || worst < 0 {
			t.Errorf("the live task's records waited up to %v beside a stalled one, want at most 11 ms (ten flushes + one)", worst)
		}
		if got := tm.src.callsOf("live"); len(got) != 0 {
			t.Errorf("the live task was paused: %v", got)
		}
		calls := tm.src.callsOf("stalled")
		for i, c := range calls {
			want := "pause stalled"
			if i%2 == 1 {
				want = "resume stalled"
			}
			if c != want {
				t.Fatalf("call %d is %q, want %q: %v", i, c, want, calls)
			}
		}
		if len(calls) == 0 || len(calls)%2 != 0 {
			t.Errorf("calls %v: the stalled task must be paused, then resumed", calls)
		}
		if got := len(sink.flushSizes("stalled")); got == 0 {
			t.Errorf("the stalled task flushed nothing after its sink came back")
		}
	})
}
