package bench

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The canned broker answers every fetch of the benchmark's topic with copies
// of one record batch of generated traffic (kfake.SyntheticFetch: the copies'
// first offsets rewritten, nothing stored, nothing read from a log), so that
// serving a record costs the broker the copies of its bytes into the
// response and the socket write, as a production broker's fetch from the
// page cache costs it almost nothing. kfake's log path costs more CPU per
// record than sluice does, so over it a benchmark at -cpu 1 measures the
// test broker; over the canned broker it measures sluice.
//
// The batch holds the first records of the case's traffic (about 1 MB of
// them, -e2e.cannedbytes, thousands of distinct records, both writer schemas where the case
// has two), encoded as the case produces them to the log broker. Partition p
// of the topic ends at ends[p] (b.N spread as produce spreads it): the
// broker answers ListOffsets with those ends instead of kfake's synthetic
// 1<<62, so a `stop_at: end` job reads b.N records, the last batch of each
// partition cut at its end by the source, and the expected output is the
// batch's tally times the whole copies below each end plus the tally of the
// partial copy's records.

// cannedEnv names the spec file of a canned broker process.
const cannedEnv = "SLUICE_BENCH_CANNED"

// cannedRecordBytes is how many bytes of records the canned batch holds,
// about. The default batch stays under the consumer's 1 MiB partition fetch
// limit, so each fetch of a partition carries one copy, as it would carry a
// produced log's batches up to that limit; a smaller batch has fewer
// distinct records and kfake packs more copies into each fetch.
var cannedRecordBytes = flag.Int("e2e.cannedbytes", 1_000_000, "bytes of records in the canned broker's batch, about (the first records of the case's traffic)")

// cannedTimestamp is every canned record's Kafka timestamp (2024-05-01, the
// day of e2eSeed): fixed so the batch is the same bytes every run.
const cannedTimestamp = 1714521600000

// cannedSpec is what a canned broker serves: written by the benchmark into
// its temporary directory, read by the broker.
type cannedSpec struct {
	Topic string
	Ends  []int64 // per partition: the end offset ListOffsets reports
	Batch []byte  // a v2 record batch, its first offset 0
}

// cannedBatch is the batch of a case and the tally of its records.
type cannedBatch struct {
	raw  []byte
	n    int64    // records in raw
	full *traffic // the tally of all n
}

// newCannedBatch encodes the first records of c's traffic, record i as
// c.value(t, i), into one uncompressed v2 record batch.
func newCannedBatch(c e2eCase) *cannedBatch {
	t := newTraffic()
	var recs []byte
	var n int32
	for len(recs) < *cannedRecordBytes {
		r := kmsg.Record{OffsetDelta: n, Value: c.record(t, int(n))}
		// Length counts the bytes after its own varint: encode once with
		// Length 0 (a one-byte varint) to measure.
		r.Length = int32(len(r.AppendTo(nil)) - 1)
		recs = r.AppendTo(recs)
		n++
	}
	rb := kmsg.RecordBatch{
		PartitionLeaderEpoch: -1,
		Magic:                2,
		LastOffsetDelta:      n - 1,
		FirstTimestamp:       cannedTimestamp,
		MaxTimestamp:         cannedTimestamp,
		ProducerID:           -1,
		ProducerEpoch:        -1,
		FirstSequence:        -1,
		NumRecords:           n,
		Records:              recs,
	}
	raw := rb.AppendTo(nil)
	// Length covers what follows it; the Castagnoli CRC covers from the
	// attributes on.
	binary.BigEndian.PutUint32(raw[8:12], uint32(len(raw)-12))
	binary.BigEndian.PutUint32(raw[17:21], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return &cannedBatch{raw: raw, n: int64(n), full: t}
}

// expect is the tally of a topic whose partitions end at ends, each holding
// copies of the batch from offset 0.
func (cb *cannedBatch) expect(c e2eCase, ends []int64) *traffic {
	sum := newTraffic()
	for _, end := range ends {
		sum.add(cb.full, end/cb.n)
		part := newTraffic()
		for i := range end % cb.n {
			c.record(part, int(i))
		}
		sum.add(part, 1)
	}
	return sum
}

// spreadEnds spreads n records over partitions as produce does, round-robin
// from partition 0.
func spreadEnds(n, partitions int) []int64 {
	ends := make([]int64, partitions)
	for p := range ends {
		ends[p] = int64(n / partitions)
		if p < n%partitions {
			ends[p]++
		}
	}
	return ends
}

// startCanned starts a canned broker for spec (where -e2e.broker says),
// stopped when tb ends.
func startCanned(tb testing.TB, dir string, spec cannedSpec) *broker {
	tb.Helper()
	text, err := json.Marshal(spec)
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(dir, "canned.json")
	if err := os.WriteFile(path, text, 0o644); err != nil {
		tb.Fatal(err)
	}
	k, err := startBroker(path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { k.prod.Close(); k.stop() })
	return k
}

// newCluster starts a kfake cluster on loopback: the log broker when
// specPath is empty, else the canned broker of that spec file.
func newCluster(specPath string) (*kfake.Cluster, error) {
	if specPath == "" {
		return kfake.NewCluster(kfake.Ports(0), kfake.AllowAutoTopicCreation())
	}
	text, err := os.ReadFile(specPath)
	if err != nil {
		return nil, err
	}
	var spec cannedSpec
	if err := json.Unmarshal(text, &spec); err != nil {
		return nil, fmt.Errorf("canned broker spec %s: %w", specPath, err)
	}
	c, err := kfake.NewCluster(kfake.Ports(0),
		kfake.SeedTopics(int32(len(spec.Ends)), spec.Topic),
		kfake.SyntheticFetch(kfake.SyntheticBatch{Batch: spec.Batch}))
	if err != nil {
		return nil, err
	}
	infos := c.PartitionInfos(spec.Topic)
	if len(infos) != len(spec.Ends) {
		c.Close()
		return nil, fmt.Errorf("canned broker: %d partitions of %s, want %d", len(infos), spec.Topic, len(spec.Ends))
	}
	epochs := make([]int32, len(infos))
	for i, pi := range infos {
		epochs[i] = pi.Epoch
	}
	c.ControlKey(int16(kmsg.ListOffsets), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		return spec.listOffsets(kreq.(*kmsg.ListOffsetsRequest), epochs)
	})
	return c, nil
}

// listOffsets answers a ListOffsets request for the earliest (0) and latest
// (the spec's end) offsets of the spec's topic. Anything else (another
// topic, a timestamp) it leaves to kfake, which would answer the latest
// offset with its synthetic 1<<62.
func (s *cannedSpec) listOffsets(req *kmsg.ListOffsetsRequest, epochs []int32) (kmsg.Response, error, bool) {
	if req.Version == 0 {
		return nil, nil, false
	}
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	for _, rt := range req.Topics {
		if rt.Topic != s.Topic {
			return nil, nil, false
		}
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			p := rp.Partition
			if p < 0 || int(p) >= len(s.Ends) {
				return nil, nil, false
			}
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition = p
			sp.LeaderEpoch = epochs[p]
			switch rp.Timestamp {
			case -1: // latest
				sp.Offset = s.Ends[p]
			case -2, -4: // earliest, earliest local
				sp.Offset = 0
			default:
				return nil, nil, false
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil, true
}

// TestCannedBatch checks a canned batch against kgo's own batch parsing and
// its tally against a record-by-record count over offsets: for each case, a
// valid v2 batch (length, CRC) of thousands of records whose values are the
// case's traffic, and expect equal to summing record offset % n over every
// offset below each end, including partial copies.
func TestCannedBatch(t *testing.T) {
	for _, c := range e2eCases {
		if c.stateful {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			cb := newCannedBatch(c)
			if cb.n < 1000 || len(cb.raw) > 1<<20 {
				t.Fatalf("%d records in %d bytes, want thousands in under 1 MiB", cb.n, len(cb.raw))
			}
			fp, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Topic: "t", Partition: 0},
				&kmsg.FetchResponseTopicPartition{RecordBatches: cb.raw, HighWatermark: cb.n}, kgo.DefaultDecompressor(), nil)
			if fp.Err != nil {
				t.Fatal(fp.Err)
			}
			if int64(len(fp.Records)) != cb.n {
				t.Fatalf("kgo parsed %d records, want %d", len(fp.Records), cb.n)
			}
			// One generator, one tally per record.
			g := newTraffic()
			one := make([]*traffic, cb.n)
			for i := range one {
				one[i] = &traffic{g: g.g, perTenant: map[string]int64{}}
				v := c.record(one[i], i)
				if r := fp.Records[i]; r.Offset != int64(i) || string(r.Value) != string(v) {
					t.Fatalf("record %d: offset %d, value differs: %v", i, r.Offset, string(r.Value) != string(v))
				}
			}
			ends := []int64{2*cb.n + 7, cb.n, 0, cb.n - 1, 1}
			want := newTraffic()
			for _, end := range ends {
				for o := range end {
					want.add(one[o%cb.n], 1)
				}
			}
			got := cb.expect(c, ends)
			got.g, want.g = nil, nil
			if diff := cmp.Diff(want, got, cmp.AllowUnexported(traffic{})); diff != "" {
				t.Errorf("expect (-brute force +got):\n%s", diff)
			}
		})
	}
}

// TestCannedBroker reads a canned broker's topic to the end offsets it
// lists, with a plain kgo consumer: every partition holds copies of the
// batch from offset 0 and ends where the spec says.
func TestCannedBroker(t *testing.T) {
	cb := newCannedBatch(e2eCases[0])
	spec := cannedSpec{Topic: "canned", Ends: []int64{cb.n + 5, 3}, Batch: cb.raw}
	k := startCanned(t, t.TempDir(), spec)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ends, err := k.adm.ListEndOffsets(ctx, spec.Topic)
	if err != nil {
		t.Fatal(err)
	}
	starts, err := k.adm.ListStartOffsets(ctx, spec.Topic)
	if err != nil {
		t.Fatal(err)
	}
	for p, end := range spec.Ends {
		if o, _ := ends.Lookup(spec.Topic, int32(p)); o.Offset != end || o.Err != nil {
			t.Fatalf("partition %d: listed end %d (%v), want %d", p, o.Offset, o.Err, end)
		}
		if o, _ := starts.Lookup(spec.Topic, int32(p)); o.Offset != 0 || o.Err != nil {
			t.Fatalf("partition %d: listed start %d (%v), want 0", p, o.Offset, o.Err)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.addrs...), kgo.ConsumeTopics(spec.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	first := map[int32][]byte{}
	next := make([]int64, len(spec.Ends))
	for done := 0; done < len(spec.Ends); {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			p := r.Partition
			if r.Offset >= spec.Ends[p] || r.Offset != next[p] {
				return
			}
			if r.Offset%cb.n == 0 {
				if first[p] == nil {
					first[p] = r.Value
				} else if string(first[p]) != string(r.Value) {
					t.Fatalf("partition %d offset %d: not a copy of the batch", p, r.Offset)
				}
			}
			next[p]++
			if next[p] == spec.Ends[p] {
				done++
			}
		})
	}
}
