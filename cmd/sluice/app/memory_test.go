package app

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/bench/gen"
)

// procBytes reads a size field of /proc/PID/status: VmRSS, the resident set,
// or RssAnon, its anonymous part (heap, stacks, runtime), which excludes
// the pages of the binary's own file.
func procBytes(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// rssSampler records the peaks of a process's RSS and of its anonymous
// part, sampled every 20 ms.
type rssSampler struct {
	peak, peakAnon atomic.Int64
	stop           chan struct{}
	done           chan struct{}
}

func sampleRSS(pid int) *rssSampler {
	s := &rssSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if n, err := procBytes(pid, "VmRSS"); err == nil && n > s.peak.Load() {
				s.peak.Store(n)
			}
			if n, err := procBytes(pid, "RssAnon"); err == nil && n > s.peakAnon.Load() {
				s.peakAnon.Store(n)
			}
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) Stop() (rss, anon int64) {
	close(s.stop)
	<-s.done
	return s.peak.Load(), s.peakAnon.Load()
}

// stallingCollector is an HTTP collector that answers 503 until released,
// then accepts everything.
func stallingCollector(t *testing.T) (url string, release func(), refused *atomic.Int64) {
	t.Helper()
	var open atomic.Bool
	refused = new(atomic.Int64)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !open.Load() {
			refused.Add(1)
			http.Error(w, "stalled", http.StatusServiceUnavailable)
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/ingest", func() { open.Store(true) }, refused
}

// memoryStall is how long TestMemoryBoundUnderLoad keeps its sink stalled
// once the job has paused: a few seconds in make test, ten minutes for the
// long run (go test ./cmd/sluice/app -run TestMemoryBoundUnderLoad
// -memory.stall 10m -timeout 30m -v).
var memoryStall = flag.Duration("memory.stall", 5*time.Second, "how long TestMemoryBoundUnderLoad's sink refuses every request after the job paused")

// A job reading as fast as it can while its https sink refuses every
// request holds no more than the memory bound that docs/job-file.md derives
// from its memory settings, however much input waits in Kafka, and for as
// long as the sink stalls (-memory.stall); once the sink recovers, every
// record arrives. It runs on an uncompressed topic, where records borrow
// the fetch responses' bytes and the input is twice what the bound allows
// above idle, and on a snappy-compressed one, where the client decompresses
// every batch into a buffer of its own and the bound grows with the
// compression ratio; the same records in both.
func TestMemoryBoundUnderLoad(t *testing.T) {
	t.Parallel() // memory, not time: it may share the machine
	ratio, recordBytes := snappyRatio(20000)
	_, input := memoryBound(0, 1, recordBytes)
	total := int(input / int64(recordBytes))
	t.Logf("generated records: %d bytes on average, %.2fx smaller with snappy in 1 MB batches", recordBytes, ratio)
	t.Run("uncompressed", func(t *testing.T) { testMemoryBound(t, kgo.NoCompression(), 1, recordBytes, total) })
	t.Run("snappy", func(t *testing.T) { testMemoryBound(t, kgo.SnappyCompression(), ratio, recordBytes, total) })
}

// The job's memory settings in TestMemoryBoundUnderLoad.
const (
	memPartitions = 4
	memTaskBuffer = 512 << 10
	memFetch      = 1 << 20
	memMaxRecords = 1000
	// Half the default, so that the test also shows the worker honours
	// the setting: at the default 200 the worker's heap may grow to
	// three times what is live, not two.
	memGCPercent = 100
)

// memoryBound is the bound of docs/job-file.md on the anonymous memory of a
// worker idle at idle bytes, running TestMemoryBoundUnderLoad's job on a
// topic whose batches compress c times, with records of r bytes on
// average; and the input that is twice what it allows above idle.
//
// It is the idle process, plus what the job may hold live with the garbage
// collector's headroom (gc_percent), plus a tenth and 4 MiB for the
// runtime's own bookkeeping. Live are, per task, an inbox and a queue, each
// a task buffer plus two partition shares of a fetch (one buffered, one in
// flight when the pause lands), decompressed, each record with its 112-byte
// engine.Record in a slice rounded up to a power of two; the client's
// fetches (one buffered, one in flight per broker), with their records'
// kgo.Records (about 256 bytes each) and, when compressed, their
// decompressed batches; and each task's bundle in each sink's buffer.
// Uncompressed records borrow the bytes of the fetch response that carried
// them; with fetch no larger than a partition's share (1 MiB), as here, a
// held share pins no more than itself.
func memoryBound(idle int64, c float64, r int) (bound, input int64) {
	const (
		partFetch = min(memFetch, 1<<20)
		sinks     = 2
		rowBytes  = 200 // a JSON row of the three columns, with slack
	)
	held := int64(memPartitions * 2 * (memTaskBuffer + 2*c*partFetch))
	fetched := int64(2 * c * memFetch)
	live := held + held*224/int64(r) + 2*memFetch + fetched*256/int64(r) + memPartitions*memMaxRecords*rowBytes*sinks
	if c > 1 {
		live += fetched
	}
	heap := live * (100 + memGCPercent) / 100
	bound = idle + heap + heap/10 + 4<<20
	return bound, 2 * (bound - idle)
}

// snappyRatio compresses the first n records that cluster.produce writes
// with snappy in blocks of a producer batch's largest size (1 MB), and
// returns how many times smaller they get (as much as they can in a batch:
// smaller batches compress less) and their average size.
func snappyRatio(n int) (ratio float64, avg int) {
	g := gen.New(0)
	var raw, packed int
	block := make([]byte, 0, 1<<20)
	flush := func() {
		raw += len(block)
		packed += len(s2.EncodeSnappy(nil, block))
		block = block[:0]
	}
	for i := range int64(n) {
		rec := g.Next()
		rec.SequenceNumber = i
		if block = rec.AppendAvro(block); len(block) >= 1_000_000 {
			flush()
		}
	}
	flush()
	return float64(raw) / float64(packed), raw / n
}

// testMemoryBound is one run of TestMemoryBoundUnderLoad: total records
// produced with codec, whose batches compress ratio times.
func testMemoryBound(t *testing.T, codec kgo.CompressionCodec, ratio float64, recordBytes, total int) {
	c := newCluster(t, memPartitions, "1s")
	c.producer(kgo.ProducerBatchCompression(codec))
	url, release, refused := stallingCollector(t)
	job := fmt.Sprintf(`job: e2e
kafka: {brokers: [%s]}
checkpoint: {store: file://%s/ckpt, interval: 1s}
metrics: {listen: "off"}
memory: {task_buffer: %d, fetch: %d, gc_percent: %d}
pipelines:
  - name: all
    source: {kafka: {topics: [e2e.traffic]}}
    format: {avro: {schema_file: traffic.avsc}}
    sql: SELECT sequence_number, src_ip, action FROM input
    bundle: {max_records: %d, max_wait: 200ms}
    sinks:
      - file: {path: %s/out.jsonl, format: json}
      - https: {url: %q, max_retries: 1, timeout: 1s}
`, c.brokers[0], c.dir, memTaskBuffer, memFetch, memGCPercent, memMaxRecords, c.dir, url)
	if err := os.WriteFile(c.job, []byte(job), 0o644); err != nil {
		t.Fatal(err)
	}

	w := c.start("e2e-0", "GODEBUG=gctrace=1") // the heap goals, for the log
	time.Sleep(3 * time.Second)                // joined, idle
	idle, err := procBytes(w.cmd.Process.Pid, "RssAnon")
	if err != nil {
		t.Fatal(err)
	}
	rss := sampleRSS(w.cmd.Process.Pid)

	bound, _ := memoryBound(idle, ratio, recordBytes)
	input := int64(total * recordBytes)
	t.Logf("idle anonymous RSS %d MiB, bound %d MiB, producing %d records (%d MiB)", idle>>20, bound>>20, total, input>>20)
	c.produce(total)

	// The sink refuses for a while: the job reads up to its buffers and
	// pauses.
	deadline := time.Now().Add(2 * time.Minute)
	for refused.Load() < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("the collector saw %d requests in 2 minutes; logs:\n%s", refused.Load(), w.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	for stalledFor := time.Duration(0); stalledFor < *memoryStall; {
		d := min(*memoryStall-stalledFor, time.Minute)
		time.Sleep(d)
		stalledFor += d
		if *memoryStall >= time.Minute {
			t.Logf("stalled %v: peak anonymous RSS %d MiB (bound %d MiB), %d requests refused", stalledFor, rss.peakAnon.Load()>>20, bound>>20, refused.Load())
		}
	}
	stalled := rss.peakAnon.Load()
	release()
	deadline = time.Now().Add(5 * time.Minute)
	for lines(filepath.Join(c.dir, "out.jsonl")) < total {
		if time.Now().After(deadline) {
			t.Fatalf("the file holds %d of %d rows 5 minutes after the sink recovered; logs:\n%s", lines(c.outPath()), total, w.logs.String())
		}
		time.Sleep(500 * time.Millisecond)
	}
	peakRSS, peak := rss.Stop()
	c.drain(w)
	c.exactlyOnce()
	maxGoal, maxLive := 0, 0
	for _, l := range strings.Split(w.logs.String(), "\n") {
		if f := strings.Fields(l); len(f) > 14 && f[0] == "gc" && f[14] == "goal," {
			g, _ := strconv.Atoi(f[12])
			maxGoal = max(maxGoal, g)
			sizes := strings.Split(f[10], "->")
			live, _ := strconv.Atoi(sizes[len(sizes)-1])
			maxLive = max(maxLive, live)
		}
	}
	t.Logf("heap: at most %d MB live after a collection, goal at most %d MB", maxLive, maxGoal)
	t.Logf("peak anonymous RSS: %d MiB while the sink stalled, %d MiB overall; bound %d MiB; idle %d MiB; peak RSS with the binary's pages %d MiB",
		stalled>>20, peak>>20, bound>>20, idle>>20, peakRSS>>20)
	if peak > bound {
		t.Errorf("peak anonymous RSS %d MiB exceeds the bound %d MiB (idle %d MiB, input %d MiB)", peak>>20, bound>>20, idle>>20, input>>20)
	}
}

// lines counts the complete lines of a file (0 if it does not exist).
func lines(path string) int {
	b, _ := os.ReadFile(path)
	return bytes.Count(b, []byte{'\n'})
}
