// Package sinktest is the conformance suite that every sink passes against
// its real part (a file, an httptest TLS collector, kfake, the bqtest
// BigQuery server, fake-gcs-server, gofakes3, Azurite): what Flush
// acknowledges is at the destination, Close after Flush succeeds, a
// destination that fails makes Flush return an error and loses nothing once
// the bundle is replayed, and a sink that keeps state (ResumableSink) resumes
// from it. It also reads the rows back from the formats sinks write (IDs).
//
// Sinks that dead-letter rows test the origin of their dead letters in
// their own origin tests: what makes a destination reject one row is
// particular to each.
package sinktest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/linkedin/goavro/v2"

	"github.com/sluicehq/sluice/engine"
)

// Schema is the rows' schema: the suite writes id = 0, 1, 2, ...
var Schema = engine.MustSchema(&engine.Type{Kind: engine.KindRecord, Name: "t.Row", Fields: []engine.Field{
	{Name: "id", Type: &engine.Type{Kind: engine.KindLong}},
	{Name: "msg", Type: &engine.Type{Kind: engine.KindString}},
}})

// Harness is what a sink's test supplies.
type Harness struct {
	// New builds the sink, writing rows of Schema to a destination that
	// is empty (or holds only what earlier sinks of the same test wrote).
	New func(t *testing.T) engine.Sink
	// Read returns the ids of the rows at the destination, in any order.
	Read func(t *testing.T) []int64
	// Break, when set, makes the destination fail (unreachable, 503,
	// full) until heal is called.
	Break func(t *testing.T) (heal func())
	// Settle, when set, is how long the destination may take to show
	// acknowledged rows (object sinks finalize objects by age).
	Settle time.Duration
	// Crashing, when set, builds the sink whose writer the state round
	// trip abandons without Close, as a killed process does; it must start
	// no timer that would act after the "crash" (New when nil).
	Crashing func(t *testing.T) engine.Sink
	// Stateful says that the sink, as New builds it, keeps state: it is an
	// engine.ResumableSink whose writers' State, given to Resume after a
	// crash, makes a replay land exactly once.
	Stateful bool
}

// Task is the task the suite's writers write for.
var Task = engine.TaskID{Topic: "in", Partition: 0}

// Run runs every check that applies to the sink. Each check builds its own
// sink with h.New and its ids do not overlap another's.
func Run(t *testing.T, h Harness) {
	t.Run("FlushAcknowledges", func(t *testing.T) { flushAcknowledges(t, h) })
	t.Run("CloseAfterFlush", func(t *testing.T) { closeAfterFlush(t, h) })
	if h.Break != nil {
		t.Run("FailureIsAnError", func(t *testing.T) { failureIsAnError(t, h) })
	}
	if h.Stateful {
		t.Run("StateRoundTrip", func(t *testing.T) { stateRoundTrip(t, h) })
	}
}

// Write writes the rows id = from..to-1 and flushes them.
func Write(ctx context.Context, w engine.Writer, from, to int) error {
	row := engine.NewRow(Schema.Width())
	for i := from; i < to; i++ {
		row.Reset(Schema.Width())
		row.SetInt(0, int64(i))
		row.SetStr(1, "hello, \"world\"")
		row.Origin = engine.Origin{Task: Task, Offset: int64(i)}
		if err := w.Write(row); err != nil {
			return err
		}
	}
	return w.Flush(ctx)
}

func open(t *testing.T, s engine.Sink) engine.Writer {
	t.Helper()
	w, err := s.Open(context.Background(), Task)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return w
}

// await waits (at most h.Settle) until the destination holds every id of
// want, and returns the ids in that range that it holds.
func await(t *testing.T, h Harness, from, to int) []int64 {
	t.Helper()
	deadline := time.Now().Add(h.Settle)
	for {
		var got []int64
		for _, id := range h.Read(t) {
			if id >= int64(from) && id < int64(to) {
				got = append(got, id)
			}
		}
		slices.Sort(got)
		if len(slices.Compact(slices.Clone(got))) == to-from || !time.Now().Before(deadline) {
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func seq(from, to int) []int64 {
	s := make([]int64, 0, to-from)
	for i := from; i < to; i++ {
		s = append(s, int64(i))
	}
	return s
}

// flushAcknowledges: once Flush returns, every row written before it is
// at the destination (at least once).
func flushAcknowledges(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.New(t)
	w := open(t, s)
	for _, r := range [][2]int{{0, 10}, {10, 110}} {
		if err := Write(ctx, w, r[0], r[1]); err != nil {
			t.Fatalf("Flush: %v", err)
		}
		if diff := cmp.Diff(seq(0, r[1]), slices.Compact(await(t, h, 0, r[1]))); diff != "" {
			t.Fatalf("after the flush of rows %d..%d, the destination holds (-want +got):\n%s", r[0], r[1]-1, diff)
		}
	}
	if err := w.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Errorf("sink Close: %v", err)
	}
}

// closeAfterFlush: Close right after a Flush succeeds and keeps the rows;
// the sink closes once its writers have.
func closeAfterFlush(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.New(t)
	w := open(t, s)
	if err := Write(ctx, w, 200, 250); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatalf("Close after Flush: %v", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatalf("sink Close: %v", err)
	}
	if diff := cmp.Diff(seq(200, 250), slices.Compact(await(t, h, 200, 250))); diff != "" {
		t.Fatalf("after Close, the destination holds (-want +got):\n%s", diff)
	}
}

// failureIsAnError: while the destination fails, Flush returns an error
// (by its context's deadline at the latest) instead of dropping the rows; the
// runtime then closes the writer, opens a new one and replays the bundle,
// and every row arrives.
func failureIsAnError(t *testing.T, h Harness) {
	ctx := context.Background()
	s := h.New(t)
	w := open(t, s)
	if err := Write(ctx, w, 300, 310); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	heal := h.Break(t)
	fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	err := Write(fctx, w, 310, 330)
	cancel()
	healed := false
	defer func() {
		if !healed {
			heal()
		}
	}()
	if err == nil {
		t.Fatal("Flush returned nil while the destination fails: the rows would be lost")
	}
	w.Close(ctx) // the runtime closes a writer that failed, whatever it says
	heal()
	healed = true
	w = open(t, s)
	if err := Write(ctx, w, 310, 330); err != nil {
		t.Fatalf("Flush of the replayed bundle once the destination is back: %v", err)
	}
	if err := w.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	if diff := cmp.Diff(seq(300, 330), slices.Compact(await(t, h, 300, 330))); diff != "" {
		t.Fatalf("after the replay, the destination holds (-want +got):\n%s", diff)
	}
}

// stateRoundTrip: a writer's state after a flush, given to Resume after a
// crash (no Close), makes the replay of what followed it land exactly
// once.
func stateRoundTrip(t *testing.T, h Harness) {
	ctx := context.Background()
	crashing := h.Crashing
	if crashing == nil {
		crashing = h.New
	}
	first := crashing(t)
	crashed, ok := first.(engine.ResumableSink)
	if !ok {
		t.Fatalf("%T keeps state but is not an engine.ResumableSink", first)
	}
	w := open(t, crashed)
	if err := Write(ctx, w, 400, 420); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	sw, ok := w.(engine.StatefulWriter)
	if !ok {
		t.Fatalf("%T is a ResumableSink whose writer %T keeps no state", crashed, w)
	}
	st := sw.State()
	if st == nil {
		t.Fatal("State after a flush is nil")
	}
	if err := Write(ctx, w, 420, 440); err != nil { // flushed after the checkpoint: replayed
		t.Fatalf("Flush: %v", err)
	}
	// SIGKILL: no Close. The runtime resumes from the checkpoint's state and
	// replays rows 420.. in another bundle.
	s := h.New(t).(engine.ResumableSink)
	w, err := s.Resume(ctx, Task, st)
	if err != nil {
		t.Fatalf("Resume: %v", err)
	}
	if err := Write(ctx, w, 420, 460); err != nil {
		t.Fatalf("Flush after Resume: %v", err)
	}
	if err := w.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Errorf("sink Close: %v", err)
	}
	if diff := cmp.Diff(seq(400, 460), await(t, h, 400, 460)); diff != "" {
		t.Fatalf("after a crash and a resumed replay, the destination holds (-want +got); each row must be there once:\n%s", diff)
	}
}

// IDs reads the id column of what a sink wrote in format (json: one object
// per line; csv: with a header; avro: an object container file) with the
// format's own reader.
func IDs(t testing.TB, format string, b []byte) []int64 {
	t.Helper()
	var ids []int64
	switch format {
	case "json":
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			var v struct{ ID int64 }
			if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
				t.Fatalf("json line %q: %v", sc.Text(), err)
			}
			ids = append(ids, v.ID)
		}
	case "csv":
		recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
		if err != nil || len(recs) == 0 || recs[0][0] != "id" {
			t.Fatalf("csv: %v %v", err, recs)
		}
		for _, r := range recs[1:] {
			id, err := strconv.ParseInt(r[0], 10, 64)
			if err != nil {
				t.Fatalf("csv id %q: %v", r[0], err)
			}
			ids = append(ids, id)
		}
	case "avro":
		r, err := goavro.NewOCFReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		for r.Scan() {
			v, err := r.Read()
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, v.(map[string]any)["id"].(int64))
		}
	default:
		t.Fatalf("sinktest.IDs: unknown format %q", format)
	}
	return ids
}
