package avro

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sluicehq/sluice/bench/gen"
	"github.com/sluicehq/sluice/engine"
	wire "github.com/sluicehq/sluice/engine/avro"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// fakeRegistry serves GET /schemas/ids/{id} as a Confluent Schema Registry
// does, and counts the requests.
func fakeRegistry(t testing.TB, schemas map[int]string) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		var id int
		if _, err := fmt.Sscanf(r.URL.Path, "/schemas/ids/%d", &id); err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
		s, ok := schemas[id]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"error_code":40403,"message":"Schema not found"}`)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"schema": s})
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func framed(id uint32, body []byte) []byte {
	out := []byte{0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(out[1:], id)
	return append(out, body...)
}

func TestAvroTwoWriterSchemas(t *testing.T) {
	rawV1, v1 := readSchema(t, "traffic.avsc")
	rawV2, v2 := readSchema(t, "traffic_v2.avsc")

	// The same values written with v1 and with v2 (whose new fields keep
	// their defaults) decode to the same rows of the reader schema v2.
	g := gen.New(11)
	type pair struct{ v1, v2 []byte }
	var pairs []pair
	for i := 0; i < 50; i++ {
		rec := g.Next()
		pairs = append(pairs, pair{rec.AppendAvro(nil), rec.AppendAvroV2(nil)})
	}

	check := func(t *testing.T, d *Decoder, recs []*engine.Record) {
		t.Helper()
		for i := 0; i < len(recs); i += 2 {
			a, b := engine.NewRow(d.Schema().Width()), engine.NewRow(d.Schema().Width())
			if err := d.Decode(recs[i], a); err != nil {
				t.Fatalf("record %d: %v", i, err)
			}
			if err := d.Decode(recs[i+1], b); err != nil {
				t.Fatalf("record %d: %v", i+1, err)
			}
			if diff := cmp.Diff(rowNative(v2, a), rowNative(v2, b), cmpOpts...); diff != "" {
				t.Fatalf("rows of writer v1 and v2 differ (-v1 +v2):\n%s", diff)
			}
		}
	}

	t.Run("registry", func(t *testing.T) {
		srv, hits := fakeRegistry(t, map[int]string{1: string(rawV1), 2: string(rawV2)})
		d, err := NewDecoder(v2, ModeRegistry, WithRegistryURL(srv.URL, srv.Client()))
		if err != nil {
			t.Fatal(err)
		}
		var recs []*engine.Record
		for i, p := range pairs {
			recs = append(recs, &engine.Record{Value: framed(1, p.v1), Offset: int64(2 * i)}, &engine.Record{Value: framed(2, p.v2), Offset: int64(2*i + 1)})
		}
		// Concurrent first use: each id is fetched once.
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				check(t, d, recs)
			}()
		}
		wg.Wait()
		if got := hits.Load(); got != 2 {
			t.Errorf("registry asked %d times, want 2 (one per schema id)", got)
		}
		row := engine.NewRow(d.Schema().Width())
		for _, tc := range []struct {
			name string
			val  []byte
			want error
		}{
			{"unknown-id", framed(99, pairs[0].v1), ErrUnknownSchema},
			{"no-framing", pairs[0].v1, ErrFraming},
			{"truncated", framed(1, pairs[0].v1[:20]), ErrTruncated},
		} {
			t.Run(tc.name, func(t *testing.T) {
				err := d.Decode(&engine.Record{Value: tc.val, Offset: 77}, row)
				var de *engine.DecodeError
				if !errors.As(err, &de) || !errors.Is(err, tc.want) || de.Origin.Offset != 77 {
					t.Fatalf("error %v, want a DecodeError at offset 77 wrapping %v", err, tc.want)
				}
			})
		}
	})

	t.Run("header", func(t *testing.T) {
		d, err := NewDecoder(v2, ModeHeader)
		if err != nil {
			t.Fatal(err)
		}
		fp := binary.LittleEndian.AppendUint64(nil, wire.Fingerprint(v2))
		var recs []*engine.Record
		for _, p := range pairs {
			recs = append(recs,
				&engine.Record{Value: p.v1, Headers: []engine.Header{{Key: HeaderKey, Value: rawV1}}},
				&engine.Record{Value: p.v2, Headers: []engine.Header{{Key: HeaderKey, Value: fp}}})
		}
		check(t, d, recs)
		unknown := binary.LittleEndian.AppendUint64(nil, wire.Fingerprint(v1)^1)
		err = d.Decode(&engine.Record{Value: pairs[0].v1, Headers: []engine.Header{{Key: HeaderKey, Value: unknown}}}, engine.NewRow(d.Schema().Width()))
		if !errors.Is(err, ErrUnknownSchema) {
			t.Fatalf("unknown fingerprint: error %v", err)
		}
		// A v1 reader cannot read v2 records: rejected for the schema, never mid-record.
		d1, err := NewDecoder(v1, ModeHeader)
		if err != nil {
			t.Fatal(err)
		}
		err = d1.Decode(&engine.Record{Value: pairs[0].v2, Headers: []engine.Header{{Key: HeaderKey, Value: rawV2}}}, engine.NewRow(d1.Schema().Width()))
		if !errors.Is(err, ErrUnknownSchema) || !strings.Contains(err.Error(), "repeat_count") {
			t.Fatalf("incompatible writer: error %v", err)
		}
	})

	t.Run("kfake", func(t *testing.T) {
		srv, _ := fakeRegistry(t, map[int]string{1: string(rawV1), 2: string(rawV2)})
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "traffic"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("traffic"),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DefaultProduceTopic("traffic"))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		fp := binary.LittleEndian.AppendUint64(nil, wire.Fingerprint(v2))
		var out []*kgo.Record
		for _, p := range pairs {
			// Registry framing for the value; the same record also carries
			// the header form, so both modes read the one topic.
			out = append(out,
				&kgo.Record{Value: framed(1, p.v1), Headers: []kgo.RecordHeader{{Key: HeaderKey, Value: rawV1}}},
				&kgo.Record{Value: framed(2, p.v2), Headers: []kgo.RecordHeader{{Key: HeaderKey, Value: fp}}})
		}
		if err := cl.ProduceSync(ctx, out...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		var got []*engine.Record
		for len(got) < len(out) {
			fs := cl.PollFetches(ctx)
			if err := fs.Err0(); err != nil {
				t.Fatal(err)
			}
			fs.EachRecord(func(r *kgo.Record) {
				er := &engine.Record{Value: r.Value, Offset: r.Offset, Timestamp: r.Timestamp}
				for _, h := range r.Headers {
					er.Headers = append(er.Headers, engine.Header{Key: h.Key, Value: h.Value})
				}
				got = append(got, er)
			})
		}
		reg, err := NewDecoder(v2, ModeRegistry, WithRegistryURL(srv.URL, srv.Client()))
		if err != nil {
			t.Fatal(err)
		}
		check(t, reg, got)
		hdr, err := NewDecoder(v2, ModeHeader)
		if err != nil {
			t.Fatal(err)
		}
		var unframed []*engine.Record
		for _, r := range got {
			u := *r
			u.Value = r.Value[5:]
			unframed = append(unframed, &u)
		}
		check(t, hdr, unframed)
	})
}
