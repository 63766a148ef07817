package checkpoint

import (
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/sluicehq/sluice/engine"
)

// TestFormat runs testdata/format: the byte layout of doc.go, case by case.
//
//	encode        the checkpoint in the input → size, hex dump, and the
//	              checkpoint decoded back
//	damage ...    encode, then damage the bytes → what Decode says. Args:
//	              truncate=N keep N bytes; append=N add N zero bytes;
//	              flip=N invert byte N; set=N:XX set byte N to hex XX;
//	              body=HEX replace the body; fix=1 then recompute the
//	              length and checksum, to reach the field checks behind them
func TestFormat(t *testing.T) {
	runTestFile(t, "testdata/format", func(t *testing.T, c *testCase) string {
		cp, err := parseCheckpoint(c.input)
		if err != nil {
			t.Fatalf("line %d: %v", c.line, err)
		}
		b := Encode(cp)
		switch c.cmd {
		case "encode":
			got, err := Decode(b)
			if err != nil {
				return fmt.Sprintf("size %d\n%sdecode error: %v", len(b), hex.Dump(b), err)
			}
			return fmt.Sprintf("size %d\n%s%s", len(b), hex.Dump(b), formatCheckpoint(got))
		case "damage":
			b = damage(t, c, b)
			got, err := Decode(b)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Errorf("line %d: error %v does not wrap ErrCorrupt", c.line, err)
				}
				if got != nil {
					t.Errorf("line %d: Decode returned a checkpoint with its error", c.line)
				}
				return "error: " + err.Error()
			}
			return formatCheckpoint(got)
		default:
			t.Fatalf("line %d: unknown command %q", c.line, c.cmd)
			return ""
		}
	})
}

func damage(t *testing.T, c *testCase, b []byte) []byte {
	t.Helper()
	atoi := func(s string) int {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("line %d: %v", c.line, err)
		}
		return n
	}
	if v, ok := c.arg(t, "body"); ok {
		body, err := hex.DecodeString(v)
		if err != nil {
			t.Fatalf("line %d: %v", c.line, err)
		}
		b = append(append(b[:headerSize:headerSize], body...), 0, 0, 0, 0)
	}
	if v, ok := c.arg(t, "set"); ok {
		off, val, _ := strings.Cut(v, ":")
		x, err := strconv.ParseUint(val, 16, 8)
		if err != nil {
			t.Fatalf("line %d: %v", c.line, err)
		}
		b[atoi(off)] = byte(x)
	}
	if v, ok := c.arg(t, "flip"); ok {
		b[atoi(v)] ^= 0xff
	}
	if v, ok := c.arg(t, "truncate"); ok {
		b = b[:atoi(v)]
	}
	if v, ok := c.arg(t, "append"); ok {
		b = append(b, make([]byte, atoi(v))...)
	}
	if _, ok := c.arg(t, "fix"); ok {
		binary.LittleEndian.PutUint32(b[offLength:], uint32(len(b)))
		end := len(b) - trailerSize
		binary.LittleEndian.PutUint32(b[end:], crc32.Checksum(b[:end], castagnoli()))
	}
	return b
}

// parseCheckpoint reads the text form used in testdata:
//
//	checkpoint job=J pod=P seq=N time=T
//	task TOPIC/PARTITION offset=O watermark=W [state=S]
func parseCheckpoint(s string) (*engine.Checkpoint, error) {
	cp := &engine.Checkpoint{}
	for i, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		kv := map[string]string{}
		for _, x := range f[1:] {
			k, v, _ := strings.Cut(x, "=")
			kv[k] = v
		}
		num := func(k string) int64 {
			n, err := strconv.ParseInt(kv[k], 10, 64)
			if err != nil && kv[k] != "" {
				panic(fmt.Sprintf("line %d: %s: %v", i+1, k, err))
			}
			return n
		}
		switch f[0] {
		case "checkpoint":
			cp.Job, cp.Pod, cp.Seq, cp.Time = kv["job"], kv["pod"], uint64(num("seq")), num("time")
		case "task":
			at := strings.LastIndexByte(f[1], '/')
			p, err := strconv.ParseInt(f[1][at+1:], 10, 32)
			if at < 0 || err != nil {
				return nil, fmt.Errorf("line %d: want task TOPIC/PARTITION", i+1)
			}
			ts := engine.TaskState{
				Task:   engine.TaskID{Topic: f[1][:at], Partition: int32(p)},
				Offset: num("offset"), Watermark: num("watermark"), State: kv["state"],
			}
			if v := kv["ahead"]; v != "" {
				for _, e := range strings.Split(v, ",") {
					name, off, _ := strings.Cut(e, ":")
					o, err := strconv.ParseInt(off, 10, 64)
					if err != nil {
						return nil, fmt.Errorf("line %d: ahead: %v", i+1, err)
					}
					ts.Pipelines = append(ts.Pipelines, engine.PipelineOffset{Pipeline: name, Offset: o})
				}
			}
			cp.Tasks = append(cp.Tasks, ts)
		default:
			return nil, fmt.Errorf("line %d: unknown %q", i+1, f[0])
		}
	}
	return cp, nil
}

func formatCheckpoint(cp *engine.Checkpoint) string {
	var b strings.Builder
	fmt.Fprintf(&b, "checkpoint job=%s pod=%s seq=%d time=%d\n", cp.Job, cp.Pod, cp.Seq, cp.Time)
	for _, t := range cp.Tasks {
		fmt.Fprintf(&b, "task %s offset=%d watermark=%d", t.Task, t.Offset, t.Watermark)
		if t.State != "" {
			fmt.Fprintf(&b, " state=%s", t.State)
		}
		for i, p := range t.Pipelines {
			if i == 0 {
				b.WriteString(" ahead=")
			} else {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%s:%d", p.Pipeline, p.Offset)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func sortedTasks(ts []engine.TaskState) []engine.TaskState {
	ts = slices.Clone(ts)
	slices.SortStableFunc(ts, func(a, b engine.TaskState) int {
		return cmp.Or(cmp.Compare(a.Task.Topic, b.Task.Topic), cmp.Compare(a.Task.Partition, b.Task.Partition))
	})
	return ts
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		cp   engine.Checkpoint
	}{
		{"empty", engine.Checkpoint{}},
		{"extremes", engine.Checkpoint{Job: "j", Pod: "p", Seq: math.MaxUint64, Time: math.MinInt64, Tasks: []engine.TaskState{
			{Task: engine.TaskID{Topic: "", Partition: math.MinInt32}, Offset: math.MinInt64, Watermark: math.MaxInt64},
			{Task: engine.TaskID{Topic: "", Partition: math.MaxInt32}, Offset: math.MaxInt64, Watermark: math.MinInt64, State: "x"},
			{Task: engine.TaskID{Topic: "\x00\xff", Partition: 0}, Offset: -1, Watermark: 1},
		}}},
		{"unsorted and duplicated", engine.Checkpoint{Job: "j", Pod: "p", Seq: 1, Time: 5, Tasks: []engine.TaskState{
			{Task: engine.TaskID{Topic: "b", Partition: 3}, Offset: 1},
			{Task: engine.TaskID{Topic: "a", Partition: 9}, Offset: 2},
			{Task: engine.TaskID{Topic: "b", Partition: 3}, Offset: 3},
			{Task: engine.TaskID{Topic: "b", Partition: -2}, Offset: 4, State: "s"},
		}}},
		{"pipelines ahead", engine.Checkpoint{Job: "j", Pod: "p", Seq: 3, Time: 9, Tasks: []engine.TaskState{
			{Task: engine.TaskID{Topic: "t", Partition: 0}, Offset: 100, Pipelines: []engine.PipelineOffset{{Pipeline: "healthy", Offset: 250}, {Pipeline: "other", Offset: 101}}},
			{Task: engine.TaskID{Topic: "t", Partition: 1}, Offset: -1, Pipelines: []engine.PipelineOffset{{Pipeline: "healthy", Offset: 7}}},
			{Task: engine.TaskID{Topic: "u", Partition: 0}, Offset: 5, State: "s", Sinks: []engine.SinkState{{Name: "healthy/bq", Data: []byte("x")}}, Pipelines: []engine.PipelineOffset{{Pipeline: "a", Offset: 6}}},
		}}},
		{"sink states", engine.Checkpoint{Job: "j", Pod: "p", Seq: 2, Time: 9, Tasks: []engine.TaskState{
			{Task: engine.TaskID{Topic: "t", Partition: 1}, Offset: 7, Sinks: []engine.SinkState{{Name: "p/0", Data: []byte{1, 0, 255}}, {Name: "q/2", Data: []byte{}}}},
			{Task: engine.TaskID{Topic: "s", Partition: 0}, Offset: 3},
			{Task: engine.TaskID{Topic: "t", Partition: 0}, Offset: 5, Sinks: []engine.SinkState{{Name: "p/0", Data: []byte("stream")}}},
		}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := Encode(&tc.cp)
			got, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.cp
			want.Tasks = sortedTasks(want.Tasks)
			if len(want.Tasks) == 0 {
				want.Tasks = nil
			}
			if diff := gocmp.Diff(&want, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
			if b2 := Encode(got); string(b2) != string(b) {
				t.Errorf("re-encoding differs:\n%x\n%x", b, b2)
			}
		})
	}
}

// TestDecodeEveryDamage flips each bit and cuts at each length of one
// object: every damaged copy must be refused.
func TestDecodeEveryDamage(t *testing.T) {
	cp := sizeJob(3, 2, 1)
	cp.Tasks[1].State = "state/abc"
	b := Encode(cp)
	for i := range len(b) {
		if _, err := Decode(b[:i]); !errors.Is(err, ErrCorrupt) {
			t.Errorf("truncated to %d bytes: err = %v, want ErrCorrupt", i, err)
		}
		for bit := range 8 {
			d := slices.Clone(b)
			d[i] ^= 1 << bit
			if _, err := Decode(d); !errors.Is(err, ErrCorrupt) {
				t.Errorf("bit %d of byte %d flipped: err = %v, want ErrCorrupt", bit, i, err)
			}
		}
	}
}

func FuzzCheckpointDecode(f *testing.F) {
	f.Add(Encode(&engine.Checkpoint{}))
	f.Add(Encode(sizeJob(2, 3, 1)))
	cp := sizeJob(1, 2, 2)
	cp.Tasks[0].State, cp.Tasks[1].Watermark = "s", 0
	f.Add(Encode(cp))
	f.Add([]byte("SLCP"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecode(t, data)
		// Random bytes almost never pass the checksum; give the field
		// decoder its turn by sealing them with a valid length and CRC.
		if len(data) >= headerSize+trailerSize {
			sealed := slices.Clone(data)
			binary.LittleEndian.PutUint32(sealed[offLength:], uint32(len(sealed)))
			end := len(sealed) - trailerSize
			binary.LittleEndian.PutUint32(sealed[end:], crc32.Checksum(sealed[:end], castagnoli()))
			checkDecode(t, sealed)
		}
	})
}

// checkDecode fails unless Decode refuses data with ErrCorrupt alone, or
// accepts it and round-trips what it decoded.
func checkDecode(t *testing.T, data []byte) {
	t.Helper()
	cp, err := Decode(data)
	if err != nil {
		if !errors.Is(err, ErrCorrupt) || cp != nil {
			t.Fatalf("Decode = %v, %v: want nil and ErrCorrupt", cp, err)
		}
		return
	}
	again, err := Decode(Encode(cp))
	if err != nil {
		t.Fatalf("re-encoded checkpoint does not decode: %v", err)
	}
	want := *cp
	want.Tasks = sortedTasks(cp.Tasks)
	if len(want.Tasks) == 0 {
		want.Tasks, again.Tasks = nil, nil
	}
	if diff := gocmp.Diff(&want, again); diff != "" {
		t.Fatalf("round trip (-want +got):\n%s", diff)
	}
}

// sizeJob builds the checkpoint of one pod running pipelines stateless
// pipelines, each reading its own topic of partitions partitions, with
// offsets and watermarks as a busy job has them. The seed fixes the values.
func sizeJob(pipelines, partitions int, seed uint64) *engine.Checkpoint {
	r := rand.New(rand.NewPCG(seed, 0))
	const now = 1_767_225_600_000_000 // 2026-01-01, unix µs
	cp := &engine.Checkpoint{Job: "tenant-a-firewall", Pod: "tenant-a-firewall-3", Seq: 86_400, Time: now}
	for p := range pipelines {
		topic := fmt.Sprintf("tenant-a.firewall.events-%03d", p)
		for part := range partitions {
			cp.Tasks = append(cp.Tasks, engine.TaskState{
				Task:      engine.TaskID{Topic: topic, Partition: int32(part)},
				Offset:    r.Int64N(2_000_000_000),
				Watermark: now - r.Int64N(2_000_000), // up to 2 s behind
			})
		}
	}
	return cp
}

func BenchmarkEncode(b *testing.B) {
	cp := sizeJob(100, 6, 1)
	b.ReportAllocs()
	var n int
	for b.Loop() {
		n = len(Encode(cp))
	}
	b.ReportMetric(float64(n), "bytes/checkpoint")
	b.ReportMetric(float64(len(cp.Tasks))*float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
}

func BenchmarkDecode(b *testing.B) {
	cp := sizeJob(100, 6, 1)
	data := Encode(cp)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		got, err := Decode(data)
		if err != nil || len(got.Tasks) != len(cp.Tasks) {
			b.Fatalf("Decode = %d tasks, %v", len(got.Tasks), err)
		}
	}
	b.ReportMetric(float64(len(cp.Tasks))*float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
}
