package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/bench/gen"
	"github.com/sluicehq/sluice/cmd/sluice/app"
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/config"
	"github.com/sluicehq/sluice/source/avro"
)

// The end-to-end benchmarks run a real job (app.Build → engine.Runtime, the
// franz-go group consumer, the Avro decoder, the SQL program, the file sink
// and the file checkpoint store) over records served by kfake.
//
// One op is one record: each call of a benchmark function readies b.N
// records in a new topic with the timer stopped, then times the whole job
// from Build to the runtime's exit, which for a `stop_at: end` job is after
// every record's bundle is flushed, checkpointed and committed. Startup (the
// group join) and the final checkpoint are inside the timer, so small b.N
// understate the rate; run with -benchtime=1000000x or so.
//
// Each case runs under one or two brokers, its sub-benchmarks named after
// them (BenchmarkEndToEnd/filter_to_jsonl/broker=canned):
//
//   - broker=log: kfake as a Kafka broker, the b.N records produced into its
//     log before the timer starts and served from it. kfake serves fetches
//     from one goroutine and spends more CPU per record doing it (the
//     broker-cpu-ns/record metric) than sluice spends consuming, so at
//     -cpu 1 the job waits on the broker: the figure is kfake's pace.
//   - broker=canned: kfake serving copies of one canned ~1 MB record batch of
//     the same generated traffic (see canned_test.go): a production broker
//     serves fetches from the page cache at almost no CPU per record, and
//     this one costs only the copies of the bytes into its response and the
//     socket write, about half of the log path and less than sluice: the
//     figure is sluice's, as long as the broker has a core of its own.
//     Stateless cases only: a stateful case (tumble_count) needs the
//     distinct event times of a real stream, which repeated copies of one
//     batch lack.
//
// fetched÷read is the bytes the broker process wrote over the bytes of the
// records the job read: about 1.03 for record framing, more when the
// consumer fetched records twice or far past the ends.
//
// The job runs with the garbage collector as sluice run sets it
// (app.TuneMemory: memory.gc_percent, default app.DefaultGCPercent), unless
// GOGC is set in the environment, which wins there as it does here: GOGC=100
// measures Go's default.
//
// By default the broker runs in a child process (this test binary re-run
// with brokerEnv set), so that -cpu 1 gives the cores sluice uses alone, as a
// worker pod's vCPU is: kfake is one serial broker that would otherwise
// share the one P with the job. -e2e.broker=inproc puts it in this process.
var (
	e2eBroker     = flag.String("e2e.broker", "process", "where the kfake brokers of the end-to-end benchmarks run: process or inproc")
	e2ePartitions = flag.Int("e2e.partitions", 6, "partitions of each benchmark topic")
	e2eProfile    = flag.String("e2e.cpuprofile", "", "write a CPU profile of each end-to-end case's timed run (the job alone: no production, no checks) to this file, with the case's name and broker before the extension (cpu.filter_to_jsonl.canned.out); do not combine with -test.cpuprofile")
)

const (
	brokerEnv = "SLUICE_BENCH_KFAKE"
	// e2eSeed seeds the traffic of every end-to-end and stage benchmark.
	e2eSeed = 20240501
	// e2eTenants is the number of tenants in the traffic: many_pipelines
	// runs one pipeline per tenant.
	e2eTenants = 100
	// stageRing is how many distinct records a stage benchmark cycles
	// through: tens of MB, more than the caches hold, as a stream is.
	stageRing = 1 << 16
)

func TestMain(m *testing.M) {
	if os.Getenv(brokerEnv) != "" {
		serveBroker()
		return
	}
	code := m.Run()
	closeBroker()
	os.Exit(code)
}

// serveBroker is the child process: a kfake cluster on loopback (the
// canned broker when cannedEnv names a spec, else the log broker) until the
// parent closes its stdin (or dies).
func serveBroker() {
	c, err := newCluster(os.Getenv(cannedEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(strings.Join(c.ListenAddrs(), ","))
	io.Copy(io.Discard, os.Stdin)
	c.Close()
}

// broker is a kfake cluster with an admin client and a producer: the log
// broker, shared by every benchmark of this process, or a case's canned
// broker.
type broker struct {
	addrs []string
	adm   *kadm.Client
	prod  *kgo.Client
	stop  func()
	pid   int // the broker's process with -e2e.broker=process, else 0
}

// written is the bytes the broker's process has passed to write calls (its
// responses: fetched records, mostly), or 0 when it runs in this process or
// cannot be read.
func (k *broker) written() int64 {
	if k.pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", k.pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "wchar:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
			return n
		}
	}
	return 0
}

// cpu is the CPU time (user + system) the broker's process has used, or 0
// when it runs in this process or cannot be read.
func (k *broker) cpu() time.Duration {
	if k.pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", k.pid))
	if err != nil {
		return 0
	}
	// Fields after the command's closing parenthesis: state is field 3,
	// utime and stime are fields 14 and 15, in clock ticks.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticksPerSecond
}

var (
	brokerOnce sync.Once
	shared     *broker
	brokerErr  error
	topicSeq   atomic.Int64
)

func sharedBroker(tb testing.TB) *broker {
	tb.Helper()
	brokerOnce.Do(func() { shared, brokerErr = startBroker("") })
	if brokerErr != nil {
		tb.Fatal(brokerErr)
	}
	return shared
}

func closeBroker() {
	if shared != nil {
		shared.prod.Close()
		shared.stop()
	}
}

// startBroker starts the log broker when cannedSpec is empty, else the
// canned broker of that spec file.
func startBroker(cannedSpec string) (*broker, error) {
	k := &broker{}
	switch *e2eBroker {
	case "inproc":
		c, err := newCluster(cannedSpec)
		if err != nil {
			return nil, err
		}
		k.addrs, k.stop = c.ListenAddrs(), c.Close
	case "process":
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), brokerEnv+"=1", cannedEnv+"="+cannedSpec)
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start broker process: %w", err)
		}
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil {
			cmd.Process.Kill()
			return nil, fmt.Errorf("broker process: %w", err)
		}
		k.addrs = strings.Split(strings.TrimSpace(line), ",")
		k.stop = func() { stdin.Close(); cmd.Wait() }
		k.pid = cmd.Process.Pid
	default:
		return nil, fmt.Errorf("-e2e.broker=%s: want process or inproc", *e2eBroker)
	}
	var err error
	k.prod, err = kgo.NewClient(kgo.SeedBrokers(k.addrs...),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerBatchMaxBytes(1<<20),
		kgo.MaxBufferedRecords(1<<17),
		kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		k.stop()
		return nil, err
	}
	k.adm = kadm.NewClient(k.prod)
	return k, nil
}

// topic creates a fresh topic named after prefix with the benchmark's
// partitions, deleted when tb ends.
func (k *broker) topic(tb testing.TB, prefix string, partitions int) string {
	tb.Helper()
	name := fmt.Sprintf("%s-%d", prefix, topicSeq.Add(1))
	ctx := context.Background()
	if _, err := k.adm.CreateTopic(ctx, int32(partitions), 1, nil, name); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { k.adm.DeleteTopics(context.Background(), name) })
	return name
}

// produce writes n records to topic, spread round-robin over its
// partitions: record i is value(i, the i-th generated record). It returns the
// bytes produced.
func (k *broker) produce(tb testing.TB, topic string, partitions, n int, value func(i int) []byte) int64 {
	tb.Helper()
	var failed atomic.Pointer[error]
	var size int64
	for i := 0; i < n; i++ {
		v := value(i)
		size += int64(len(v))
		k.prod.Produce(context.Background(), &kgo.Record{Topic: topic, Partition: int32(i % partitions), Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.CompareAndSwap(nil, &err)
			}
		})
	}
	if err := k.prod.Flush(context.Background()); err != nil {
		tb.Fatal(err)
	}
	if err := failed.Load(); err != nil {
		tb.Fatal(*err)
	}
	return size
}

// traffic is the seeded record stream every benchmark reads, with what the
// cases expect of it, computed in plain Go while producing.
type traffic struct {
	g *gen.Gen
	// Of the records with action <> 'ALLOW': count and sum of bytes_total.
	denied, deniedBytes int64
	// Of every record: sum of bytes_total, count per tenant.
	allBytes  int64
	perTenant map[string]int64
	// Of the records written with the v2 schema: count.
	v2 int64
	// Of every record: the bytes of its value.
	bytes int64
}

func newTraffic() *traffic {
	return &traffic{g: gen.New(e2eSeed, gen.Tenants(e2eTenants)), perTenant: map[string]int64{}}
}

// next generates one record and accounts it.
func (t *traffic) next() *gen.Record {
	r := t.g.Next()
	t.allBytes += r.BytesTotal
	t.perTenant[r.TenantID]++
	if r.Action != "ALLOW" {
		t.denied++
		t.deniedBytes += r.BytesTotal
	}
	return r
}

// add adds k times o's tally to t's.
func (t *traffic) add(o *traffic, k int64) {
	t.denied += k * o.denied
	t.deniedBytes += k * o.deniedBytes
	t.allBytes += k * o.allBytes
	t.v2 += k * o.v2
	t.bytes += k * o.bytes
	for tenant, n := range o.perTenant {
		t.perTenant[tenant] += k * n
	}
}

// Registry ids of the two writer schemas of two_writer_schemas.
const (
	regIDv1 = 1
	regIDv2 = 2
)

func frame(id uint32, body func([]byte) []byte) []byte {
	b := make([]byte, 5, 600)
	binary.BigEndian.PutUint32(b[1:], id)
	return body(b)
}

// jobEnv is what a case's job file is written against.
type jobEnv struct {
	name, topic, dir, schemas, registry string
}

func (e jobEnv) header() string {
	reg := ""
	if e.registry != "" {
		reg = fmt.Sprintf(", schema_registry: {url: %q}", e.registry)
	}
	return fmt.Sprintf(`job: %s
kafka: {brokers: [placeholder:9092]%s}
checkpoint: {store: "file://%s/ckpt"}
metrics: {listen: "off"}
pipelines:
`, e.name, reg, e.dir)
}

func (e jobEnv) pipeline(name, schema, writer, sql, sink string) string {
	return fmt.Sprintf(`  - name: %s
    source: {kafka: {topics: [%s], start: earliest, stop_at: end}}
    format: {avro: {schema_file: %q, writer_schema: %s}}
    sql: %q
    sinks:
      - file: %s
    dead_letter:
      file: {path: %q, format: json}
`, name, e.topic, filepath.Join(e.schemas, schema), writer, sql, sink, filepath.Join(e.dir, "dlq", name+".jsonl"))
}

type e2eCase struct {
	name string
	// value encodes record i, accounting it in t.
	value func(t *traffic, i int) []byte
	// job writes the job file.
	job func(e jobEnv) string
	// registry serves the writer schemas by id when set.
	registry bool
	// check verifies the sinks' output against t.
	check func(tb testing.TB, e jobEnv, t *traffic, n int)
	// stateful cases need a stream's distinct event times: they run under
	// the log broker only.
	stateful bool
}

// record encodes record i of the case's traffic, accounting it in t.
func (c e2eCase) record(t *traffic, i int) []byte {
	v := c.value(t, i)
	t.bytes += int64(len(v))
	return v
}

// brokers are the brokers the case runs under (see BenchmarkEndToEnd).
func (c e2eCase) brokers() []string {
	if c.stateful {
		return []string{"log"}
	}
	return []string{"canned", "log"}
}

const filterSQL = "SELECT receive_time, tenant_id, src_ip, dst_ip, dst_port, app, rule, action, bytes_total FROM input WHERE action <> 'ALLOW'"

const tumbleSQL = "SELECT window_start, src_ip, dst_ip, action, COUNT(*) AS records, SUM(bytes_total) AS bytes FROM input GROUP BY TUMBLE(time_generated, '1 minute'), src_ip, dst_ip, action"

const projectSQL = "SELECT receive_time, tenant_id, src_ip, dst_ip, src_port, dst_port, app, action, bytes_total, packets_total FROM input"

var e2eCases = []e2eCase{
	{
		name:  "filter_to_jsonl",
		value: func(t *traffic, i int) []byte { return t.next().AppendAvro(make([]byte, 0, 600)) },
		job: func(e jobEnv) string {
			return e.header() + e.pipeline("denied", "traffic.avsc", "reader", filterSQL,
				fmt.Sprintf("{path: %q, format: json}", filepath.Join(e.dir, "out.jsonl")))
		},
		check: func(tb testing.TB, e jobEnv, t *traffic, n int) {
			checkJSONL(tb, filepath.Join(e.dir, "out.jsonl"), t.denied, t.deniedBytes, true)
		},
	},
	{
		// A 1-minute tumbling COUNT and SUM per (src_ip, dst_ip, action):
		// the generator's 200 sources and destinations make tens of
		// thousands of groups per window. The state is in Pebble and
		// snapshot at each checkpoint; the check sums every emitted row.
		name:     "tumble_count",
		stateful: true,
		value:    func(t *traffic, i int) []byte { return t.next().AppendAvro(make([]byte, 0, 600)) },
		job: func(e jobEnv) string {
			return e.header() + fmt.Sprintf(`  - name: tumble
    source: {kafka: {topics: [%s], start: earliest, stop_at: end}}
    format: {avro: {schema_file: %q, writer_schema: reader}}
    event_time: time_generated
    allowed_lateness: 1h
    aggregation: per_partition
    sql: %q
    sinks:
      - file: {path: %q, format: json}
    dead_letter:
      file: {path: %q, format: json}
`, e.topic, filepath.Join(e.schemas, "traffic.avsc"), tumbleSQL, filepath.Join(e.dir, "out.jsonl"), filepath.Join(e.dir, "dlq", "tumble.jsonl"))
		},
		check: func(tb testing.TB, e jobEnv, t *traffic, n int) {
			f, err := os.Open(filepath.Join(e.dir, "out.jsonl"))
			if err != nil {
				tb.Fatal(err)
			}
			defer f.Close()
			sc := bufio.NewScanner(f)
			var records, bytes, rows int64
			for sc.Scan() {
				var row struct {
					Records int64 `json:"records"`
					Bytes   int64 `json:"bytes"`
				}
				if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
					tb.Fatal(err)
				}
				records += row.Records
				bytes += row.Bytes
				rows++
			}
			if records != int64(n) || bytes != t.allBytes {
				tb.Fatalf("windows count %d records and %d bytes, want %d and %d", records, bytes, n, t.allBytes)
			}
			// Task state objects in the checkpoint store are content-
			// addressed and written once: their total is what was
			// uploaded, spread over the snapshots (manifests) taken.
			var stateBytes, manifests, manifestBytes, maxManifest int64
			filepath.WalkDir(filepath.Join(e.dir, "ckpt"), func(path string, d os.DirEntry, err error) error {
				if err != nil || d.IsDir() || filepath.Base(filepath.Dir(path)) != "state" {
					return err
				}
				info, err := d.Info()
				if err != nil {
					return err
				}
				stateBytes += info.Size()
				if strings.HasSuffix(path, ".state") {
					manifests++
					manifestBytes += info.Size()
					maxManifest = max(maxManifest, info.Size())
				}
				return nil
			})
			// A snapshot's manifest names its sstables and holds only the
			// small files inline: it must stay small.
			if maxManifest >= 4<<10 {
				tb.Errorf("a state manifest of %d bytes, want under 4 KiB", maxManifest)
			}
			if tb, ok := tb.(*testing.B); ok {
				tb.ReportMetric(float64(rows), "window-rows")
				if manifests > 0 {
					tb.ReportMetric(float64(stateBytes)/float64(manifests), "state-upload-B/snapshot")
					tb.ReportMetric(float64(manifestBytes)/float64(manifests), "manifest-B")
				}
			}
		},
	},
	{
		name:  "project_to_avro",
		value: func(t *traffic, i int) []byte { return t.next().AppendAvro(make([]byte, 0, 600)) },
		job: func(e jobEnv) string {
			return e.header() + e.pipeline("all", "traffic.avsc", "reader", projectSQL,
				fmt.Sprintf("{path: %q, format: avro}", filepath.Join(e.dir, "out.avro")))
		},
		check: func(tb testing.TB, e jobEnv, t *traffic, n int) {
			checkOCF(tb, filepath.Join(e.dir, "out.avro"), int64(n), t.allBytes, 10)
		},
	},
	{
		name:  "many_pipelines",
		value: func(t *traffic, i int) []byte { return t.next().AppendAvro(make([]byte, 0, 600)) },
		job: func(e jobEnv) string {
			var sb strings.Builder
			sb.WriteString(e.header())
			for i := range e2eTenants {
				sql := fmt.Sprintf("SELECT receive_time, src_ip, dst_ip, app, action, bytes_total FROM input WHERE tenant_id = 'tenant-%03d'", i)
				sb.WriteString(e.pipeline(fmt.Sprintf("tenant-%03d", i), "traffic.avsc", "reader", sql,
					fmt.Sprintf("{path: %q, format: json}", filepath.Join(e.dir, "out", fmt.Sprintf("tenant-%03d.jsonl", i)))))
			}
			return sb.String()
		},
		check: func(tb testing.TB, e jobEnv, t *traffic, n int) {
			var total int64
			for i := range e2eTenants {
				name := fmt.Sprintf("tenant-%03d", i)
				total += checkJSONL(tb, filepath.Join(e.dir, "out", name+".jsonl"), t.perTenant[name], -1, false)
			}
			if total != int64(n) {
				tb.Fatalf("%d rows over the tenants' files, want %d", total, n)
			}
		},
	},
	{
		name: "two_writer_schemas",
		value: func(t *traffic, i int) []byte {
			r := t.next()
			if i%2 == 1 {
				t.v2++
				return frame(regIDv2, r.AppendAvroV2)
			}
			return frame(regIDv1, r.AppendAvro)
		},
		registry: true,
		job: func(e jobEnv) string {
			sql := "SELECT receive_time, tenant_id, src_ip, dst_ip, dst_port, app, rule, action, bytes_total, repeat_count, xff_ip FROM input WHERE action <> 'ALLOW'"
			return e.header() + e.pipeline("denied", "traffic_v2.avsc", "registry", sql,
				fmt.Sprintf("{path: %q, format: json}", filepath.Join(e.dir, "out.jsonl")))
		},
		check: func(tb testing.TB, e jobEnv, t *traffic, n int) {
			checkJSONL(tb, filepath.Join(e.dir, "out.jsonl"), t.denied, t.deniedBytes, true)
		},
	},
}

// checkJSONL checks that path holds want JSON lines (and, when wantBytes >=
// 0, that their bytes_total add up to it; with denied, that none is ALLOW).
// It returns the count.
func checkJSONL(tb testing.TB, path string, want, wantBytes int64, denied bool) int64 {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) && want == 0 {
			return 0
		}
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var n, sum int64
	for sc.Scan() {
		var row struct {
			Action     string `json:"action"`
			BytesTotal int64  `json:"bytes_total"`
		}
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			tb.Fatalf("%s line %d: %v", filepath.Base(path), n+1, err)
		}
		if denied && row.Action == "ALLOW" {
			tb.Fatalf("%s line %d: an ALLOW row passed the filter", filepath.Base(path), n+1)
		}
		n++
		sum += row.BytesTotal
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	if n != want || (wantBytes >= 0 && sum != wantBytes) {
		tb.Fatalf("%s: %d rows with bytes_total sum %d, want %d rows summing %d", filepath.Base(path), n, sum, want, wantBytes)
	}
	return n
}

// checkOCF reads the Avro container file back with the file's own schema and
// checks its row count, column count and the sum of bytes_total.
func checkOCF(tb testing.TB, path string, want, wantBytes int64, cols int) {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	r, err := avro.NewOCFReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		tb.Fatal(err)
	}
	typ := r.Schema()
	if len(typ.Fields) != cols {
		tb.Fatalf("%s: %d columns, want %d", filepath.Base(path), len(typ.Fields), cols)
	}
	p, err := avro.Compile(typ, typ)
	if err != nil {
		tb.Fatal(err)
	}
	col, ok := engine.MustSchema(typ).Lookup("bytes_total")
	if !ok {
		tb.Fatal("no bytes_total column")
	}
	row := engine.NewRow(p.Width())
	var n, sum int64
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			tb.Fatal(err)
		}
		row.Reset(p.Width())
		if err := p.Decode(rec, row); err != nil {
			tb.Fatal(err)
		}
		n++
		sum += row.Int(col.Slot)
	}
	if n != want || sum != wantBytes {
		tb.Fatalf("%s: %d rows with bytes_total sum %d, want %d rows summing %d", filepath.Base(path), n, sum, want, wantBytes)
	}
}

// checkCommitted checks that the job's group committed every partition of
// topic at its end offset, each with a checkpoint key as metadata.
func checkCommitted(tb testing.TB, k *broker, group, topic string) {
	tb.Helper()
	ctx := context.Background()
	ends, err := k.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		tb.Fatal(err)
	}
	committed, err := k.adm.FetchOffsets(ctx, group)
	if err != nil {
		tb.Fatal(err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset == 0 {
			return // an empty partition of a tiny b.N has nothing to commit
		}
		c, ok := committed.Lookup(topic, o.Partition)
		if !ok || c.At != o.Offset || c.Metadata == "" {
			tb.Fatalf("%s/%d: committed %+v, want offset %d with a checkpoint key", topic, o.Partition, c, o.Offset)
		}
	})
}

// registryServer serves the two writer schemas the Confluent way:
// GET /schemas/ids/{id} → {"schema": "..."}.
func registryServer(tb testing.TB) string {
	tb.Helper()
	v1, err := os.ReadFile(filepath.Join("..", "testdata", "schemas", "traffic.avsc"))
	if err != nil {
		tb.Fatal(err)
	}
	v2, err := os.ReadFile(filepath.Join("..", "testdata", "schemas", "traffic_v2.avsc"))
	if err != nil {
		tb.Fatal(err)
	}
	byID := map[string][]byte{fmt.Sprint(regIDv1): v1, fmt.Sprint(regIDv2): v2}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /schemas/ids/{id}", func(w http.ResponseWriter, r *http.Request) {
		text, ok := byID[r.PathValue("id")]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"error_code":40403,"message":"Schema not found"}`)
			return
		}
		w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
		json.NewEncoder(w).Encode(map[string]string{"schema": string(text)})
	})
	srv := httptest.NewServer(mux)
	tb.Cleanup(srv.Close)
	return srv.URL
}

// heapSampler records the peak of the live heap while a job runs, and the
// peak of the process's anonymous resident memory (heap, stacks, runtime:
// what the pod's memory limit sees, without the binary's shared pages).
type heapSampler struct {
	stop    chan struct{}
	done    chan struct{}
	peak    uint64
	peakRSS int64
}

const heapMetric = "/memory/classes/heap/objects:bytes"

func sampleHeap(every time.Duration) *heapSampler {
	h := &heapSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		s := []metrics.Sample{{Name: heapMetric}}
		t := time.NewTicker(every)
		defer t.Stop()
		for i := 0; ; i++ {
			metrics.Read(s)
			h.peak = max(h.peak, s[0].Value.Uint64())
			if i%10 == 0 { // /proc costs more than runtime/metrics
				if n, err := anonRSS(); err == nil {
					h.peakRSS = max(h.peakRSS, n)
				}
			}
			select {
			case <-t.C:
			case <-h.stop:
				return
			}
		}
	}()
	return h
}

// heapAllocs is the count of heap objects allocated so far by the process:
// -benchmem's allocs/op, with the fraction that its integer drops.
func heapAllocs() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:objects"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// Peak stops the sampler and returns the peaks of the heap and of the
// anonymous RSS in MiB.
func (h *heapSampler) Peak() (heap, rss float64) {
	close(h.stop)
	<-h.done
	return float64(h.peak) / (1 << 20), float64(h.peakRSS) / (1 << 20)
}

// anonRSS reads RssAnon, the anonymous part of this process's resident set.
func anonRSS() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "RssAnon:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no RssAnon in /proc/self/status")
}

// firstSource forwards everything to the job's source and notes when the
// first record is delivered, to split startup (Build, group join, first
// fetch) from steady throughput. It forwards Pause, Resume and Close, which
// the runtime finds by type assertion.
type firstSource struct {
	engine.Source
	first atomic.Int64 // unix nanoseconds of the first Deliver
}

func (s *firstSource) Run(ctx context.Context, h engine.Handler) error {
	return s.Source.Run(ctx, &firstHandler{Handler: h, s: s})
}

func (s *firstSource) Pause(ids ...engine.TaskID) {
	if p, ok := s.Source.(engine.Pauser); ok {
		p.Pause(ids...)
	}
}

func (s *firstSource) Resume(ids ...engine.TaskID) {
	if p, ok := s.Source.(engine.Pauser); ok {
		p.Resume(ids...)
	}
}

func (s *firstSource) Close() error {
	if c, ok := s.Source.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

type firstHandler struct {
	engine.Handler
	s *firstSource
}

// Batch forwards engine.Batcher, which embedding the Handler would hide.
func (h *firstHandler) Batch(n int) []engine.Record {
	if b, ok := h.Handler.(engine.Batcher); ok {
		return b.Batch(n)
	}
	return make([]engine.Record, 0, n)
}

func (h *firstHandler) Deliver(id engine.TaskID, recs []engine.Record) {
	if h.s.first.Load() == 0 {
		h.s.first.CompareAndSwap(0, time.Now().UnixNano())
	}
	h.Handler.Deliver(id, recs)
}

var jobSeq atomic.Int64

// startJobProfile starts the CPU profile of a case's timed run when
// -e2e.cpuprofile is set, and returns what stops it. Unlike go test's
// -cpuprofile, which covers the whole process (production, checks, every
// case) and must be cut with -tagfocus, this profile holds the job alone,
// including what carries no goroutine label: the GC's background workers,
// the scheduler, netpoll. testing runs a case with b.N = 1 before the
// measured run; the measured run is the last to write the file.
func startJobProfile(b *testing.B, name string) func() {
	if *e2eProfile == "" {
		return func() {}
	}
	ext := filepath.Ext(*e2eProfile)
	path := strings.TrimSuffix(*e2eProfile, ext) + "." + name + ext
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		b.Fatalf("-e2e.cpuprofile: %v (not with -test.cpuprofile)", err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEndToEnd(b *testing.B) {
	schemas, err := filepath.Abs(filepath.Join("..", "testdata", "schemas"))
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range e2eCases {
		b.Run(c.name, func(b *testing.B) {
			for _, kind := range c.brokers() {
				b.Run("broker="+kind, func(b *testing.B) { benchEndToEnd(b, c, kind, schemas) })
			}
		})
	}
}

// benchEndToEnd runs case c's job over b.N records served by the broker of
// kind (see BenchmarkEndToEnd).
func benchEndToEnd(b *testing.B, c e2eCase, kind, schemas string) {
	parts := *e2ePartitions
	e := jobEnv{
		name:    fmt.Sprintf("e2e-%s-%s-%d", strings.ReplaceAll(c.name, "_", "-"), kind, jobSeq.Add(1)),
		dir:     b.TempDir(),
		schemas: schemas,
	}
	if c.registry {
		e.registry = registryServer(b)
	}
	var k *broker
	var t *traffic // the tally of the records the topic holds
	switch kind {
	case "log":
		k = sharedBroker(b)
		e.topic = k.topic(b, e.name, parts)
		t = newTraffic()
		k.produce(b, e.topic, parts, b.N, func(i int) []byte { return c.record(t, i) })
	case "canned":
		e.topic = e.name
		batch := newCannedBatch(c)
		ends := spreadEnds(b.N, parts)
		k = startCanned(b, e.dir, cannedSpec{Topic: e.topic, Ends: ends, Batch: batch.raw})
		t = batch.expect(c, ends)
	}
	size := t.bytes
	jobFile := filepath.Join(e.dir, "job.yaml")
	text := c.job(e)
	if err := os.WriteFile(jobFile, []byte(text), 0o644); err != nil {
		b.Fatal(err)
	}
	runtime.GC()

	b.ReportAllocs()
	b.SetBytes(size / int64(b.N))
	b.ResetTimer()
	heap := sampleHeap(5 * time.Millisecond)
	stopProfile := startJobProfile(b, c.name+"."+kind)
	// A stateful job's task databases, where app.Build puts them.
	disk := sampleDisk(filepath.Join(os.TempDir(), "sluice-state", e.name), 100*time.Millisecond)
	allocs0 := heapAllocs()
	cpu := startCPU()
	brokerCPU, brokerWritten := k.cpu(), k.written()
	start := time.Now()
	// A bounded job that never ends is a failure, not a hang: allow
	// it far more than it needs (10 µs a record, 30 s to start).
	limit := 30*time.Second + time.Duration(b.N)*10*time.Microsecond
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	// The job's goroutines inherit this label, so that a CPU
	// profile can be cut to the timed run: -tagfocus bench=job.
	pprof.SetGoroutineLabels(pprof.WithLabels(ctx, pprof.Labels("bench", "job")))
	cj, err := config.Parse(jobFile, []byte(text), nil)
	if err != nil {
		b.Fatal(err)
	}
	// The garbage collector as sluice run sets it for the job.
	_, restoreGC := app.TuneMemory(cj)
	defer restoreGC()
	built, err := app.Build(ctx, cj, app.Options{Pod: "bench-0", Brokers: k.addrs})
	if err != nil {
		b.Fatal(err)
	}
	src := &firstSource{Source: built.Job.Source}
	built.Job.Source = src
	rt, err := engine.New(built.Job)
	if err != nil {
		b.Fatal(err)
	}
	if err := rt.Run(ctx); err != nil {
		b.Fatal(err)
	}
	end := time.Now()
	b.StopTimer()
	stopProfile()
	pprof.SetGoroutineLabels(context.Background())
	if ctx.Err() != nil {
		b.Fatalf("the bounded job did not end within %v (drained instead)", limit)
	}
	cpu.report(b, b.N)
	if k.pid != 0 {
		b.ReportMetric(float64(k.cpu()-brokerCPU)/float64(b.N), "broker-cpu-ns/record")
		// Over the bytes of the records the job read: above 1 when the
		// consumer fetched records more than once or past the ends.
		b.ReportMetric(float64(k.written()-brokerWritten)/float64(t.bytes), "fetched÷read")
	}
	allocs := heapAllocs() - allocs0
	peak, peakRSS := heap.Peak()
	peakDisk := disk.Peak()

	st := rt.Stats()
	if got := st.RecordsIn.Load(); got != int64(b.N)*int64(len(built.Job.Pipelines)) {
		b.Fatalf("records in %d, want %d × %d pipelines", got, b.N, len(built.Job.Pipelines))
	}
	if dl := st.DeadLetters.Load(); dl != 0 {
		b.Fatalf("%d dead letters", dl)
	}
	c.check(b, e, t, b.N)
	checkCommitted(b, k, e.name, e.topic)

	elapsed := end.Sub(start).Seconds()
	b.ReportMetric(float64(b.N)/elapsed, "records/s")
	b.ReportMetric(peak, "peak-heap-MiB")
	b.ReportMetric(peakRSS, "peak-rss-MiB")
	b.ReportMetric(float64(allocs)/float64(b.N), "allocs/record")
	if peakDisk > 0 {
		b.ReportMetric(float64(peakDisk), "peak-state-disk-B")
	}
	if first := src.first.Load(); first > 0 {
		b.ReportMetric(time.Unix(0, first).Sub(start).Seconds()*1e3, "startup-ms")
		b.ReportMetric(float64(b.N)/end.Sub(time.Unix(0, first)).Seconds(), "steady-records/s")
	}
}
