package bench

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/bench/gen"
	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/source/avro"
	"github.com/sluicehq/sluice/sql"
)

// aggSchema is the part of traffic.avsc that tumbleSQL reads, so that
// BenchmarkAggregate's rows are small enough to hold a long ring of them.
const aggSchema = `{"type": "record", "name": "TrafficLog", "fields": [
  {"name": "time_generated", "type": {"type": "long", "logicalType": "timestamp-micros"}},
  {"name": "src_ip", "type": "string"},
  {"name": "dst_ip", "type": "string"},
  {"name": "action", "type": {"type": "enum", "name": "Action", "symbols": ["ALLOW", "DENY", "DROP", "RESET_CLIENT", "RESET_SERVER", "RESET_BOTH"]}},
  {"name": "bytes_total", "type": "long"}
]}`

// aggRing is how many distinct rows BenchmarkAggregate cycles through:
// about 26 s of the generator's event time (5,000 records a second), so
// that a 1-minute window sees the key spread of a real stream.
const aggRing = 1 << 17

// aggBundle is the records of one bundle (engine.DefaultMaxRecords), after
// which the state is saved; aggCheckpoint is the bundles between snapshots.
const (
	aggBundle     = engine.DefaultMaxRecords
	aggCheckpoint = 10
)

// BenchmarkAggregate is tumble_count's aggregation alone, one task, on
// pre-decoded rows: Add and Fire per record, Save into the task's Pebble
// database per bundle, a snapshot into a local checkpoint store every
// aggCheckpoint bundles, and every window emitted at the end. It checks that
// the emitted rows count every record and sum every byte.
func BenchmarkAggregate(b *testing.B) {
	for _, bc := range []struct {
		name     string
		lateness time.Duration
	}{
		// As tumble_count runs it: nothing closes before the end.
		{"lateness_1h", time.Hour},
		// Windows close as the stream moves on: state stays bounded.
		{"lateness_5s", 5 * time.Second},
	} {
		b.Run(bc.name, func(b *testing.B) { benchAggregate(b, bc.lateness) })
	}
}

func benchAggregate(b *testing.B, lateness time.Duration) {
	typ, err := avro.ParseSchema([]byte(aggSchema))
	if err != nil {
		b.Fatal(err)
	}
	schema := engine.MustSchema(typ)
	tr, err := sql.CompileTransform(tumbleSQL, schema)
	if err != nil {
		b.Fatal(err)
	}
	agg := tr.(engine.Aggregator)
	col := func(name string) int {
		c, ok := schema.Lookup(name)
		if !ok {
			b.Fatalf("no column %s", name)
		}
		return c.Slot
	}
	tCol, srcCol, dstCol, actCol, bytesCol := col("time_generated"), col("src_ip"), col("dst_ip"), col("action"), col("bytes_total")
	g := gen.New(e2eSeed)
	rows := make([]*engine.Row, aggRing)
	var first, last int64
	var ringBytes int64
	for i := range rows {
		r := g.Next()
		row := engine.NewRow(schema.Width())
		t := r.TimeGenerated.UnixMicro()
		row.Slots[tCol].N = uint64(t)
		row.Slots[srcCol].S = r.SrcIP
		row.Slots[dstCol].S = r.DstIP
		for j, s := range gen.Actions {
			if s == r.Action {
				row.Slots[actCol] = engine.Slot{N: uint64(j), S: s}
			}
		}
		row.Slots[bytesCol].N = uint64(r.BytesTotal)
		ringBytes += r.BytesTotal
		rows[i] = row
		if i == 0 {
			first = t
		}
		last = max(last, t)
	}
	// Each pass over the ring moves its event times on by the ring's span,
	// so the stream's time keeps advancing.
	span := last - first + 1_000_000
	recordsCol, bytesOut := outCol(b, agg, "records"), outCol(b, agg, "bytes")

	dir := b.TempDir()
	store, err := checkpoint.NewDir(filepath.Join(dir, "ckpt"))
	if err != nil {
		b.Fatal(err)
	}
	states, err := checkpoint.NewTaskStates(checkpoint.NewState(store, checkpoint.WithStateThreshold(checkpoint.TaskStateThreshold)), filepath.Join(dir, "tasks"), "bench")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	ts, err := states.Open(ctx, engine.TaskID{Topic: "t", Partition: 0}, "")
	if err != nil {
		b.Fatal(err)
	}
	defer ts.Close()
	state := agg.NewAggregate(lateness)
	var outRows, outRecords, outBytes int64
	emit := func(out *engine.Row) error {
		outRows++
		outRecords += out.Int(recordsCol)
		outBytes += out.Int(bytesOut)
		return nil
	}
	save := func() {
		if err := ts.Apply(state.Save); err != nil {
			b.Fatal(err)
		}
	}
	var snapshots int
	var peakDisk int64
	snapshot := func() {
		if _, err := ts.Snapshot(ctx); err != nil {
			b.Fatal(err)
		}
		snapshots++
		peakDisk = max(peakDisk, dirBytes(b, filepath.Join(dir, "tasks"), ""))
	}

	b.ReportAllocs()
	allocs0 := heapAllocs()
	b.ResetTimer()
	// CPU time, not only wall time: on a shared machine the wall time
	// counts other processes' turns.
	cpu := startCPU()
	var wantBytes int64
	for i := 0; i < b.N; i++ {
		idx := i % aggRing
		if idx == 0 && i > 0 {
			for _, r := range rows {
				r.Slots[tCol].N += uint64(span)
			}
		}
		if late, err := state.Add(rows[idx]); err != nil || late {
			b.Fatalf("record %d: late %v, error %v", i, late, err)
		}
		wantBytes += int64(rows[idx].Slots[bytesCol].N)
		if err := state.Fire(false, emit); err != nil {
			b.Fatal(err)
		}
		if (i+1)%aggBundle == 0 {
			save()
			if (i+1)%(aggBundle*aggCheckpoint) == 0 {
				snapshot()
			}
		}
	}
	if err := state.Fire(true, emit); err != nil {
		b.Fatal(err)
	}
	save()
	snapshot()
	b.StopTimer()
	cpu.report(b, b.N)
	allocs := heapAllocs() - allocs0
	_ = ringBytes
	if outRecords != int64(b.N) || outBytes != wantBytes {
		b.Fatalf("windows count %d records and %d bytes, want %d and %d", outRecords, outBytes, b.N, wantBytes)
	}
	uploaded := dirBytes(b, filepath.Join(dir, "ckpt"), "")
	manifests := dirBytes(b, filepath.Join(dir, "ckpt"), ".state")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(allocs)/float64(b.N), "allocs/record")
	b.ReportMetric(float64(outRows), "window-rows")
	b.ReportMetric(float64(peakDisk), "peak-state-disk-B")
	b.ReportMetric(float64(uploaded)/float64(snapshots), "state-upload-B/snapshot")
	b.ReportMetric(float64(manifests)/float64(snapshots), "manifest-B")
}

func outCol(b *testing.B, agg engine.Aggregator, name string) int {
	c, ok := agg.Output().Lookup(name)
	if !ok {
		b.Fatalf("no output column %s", name)
	}
	return c.Slot
}

// dirBytes is the size of the regular files under dir whose names end in
// suffix.
func dirBytes(tb testing.TB, dir, suffix string) int64 {
	tb.Helper()
	n, err := dirSize(dir, suffix)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// dirSize is dirBytes without a testing.TB, for a sampling goroutine; a
// missing dir has size 0.
func dirSize(dir, suffix string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil // not created yet, or a scratch file Pebble removed meanwhile
			}
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, suffix) {
			return nil
		}
		if info, err := d.Info(); err == nil {
			n += info.Size()
		}
		return nil
	})
	return n, err
}

// diskSampler records the peak size of a directory while a job runs.
type diskSampler struct {
	stop, done chan struct{}
	peak       int64
}

func sampleDisk(dir string, every time.Duration) *diskSampler {
	d := &diskSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(d.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if n, err := dirSize(dir, ""); err == nil {
				d.peak = max(d.peak, n)
			}
			select {
			case <-t.C:
			case <-d.stop:
				return
			}
		}
	}()
	return d
}

// Peak stops the sampler and returns the largest size it saw.
func (d *diskSampler) Peak() int64 {
	close(d.stop)
	<-d.done
	return d.peak
}
