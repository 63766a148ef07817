package kafka_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/sink/kafka"
	"github.com/sluicehq/sluice/source/avro"
	source "github.com/sluicehq/sluice/source/kafka"
)

// TestKafkaSinkSourceRoundTrip: what the Kafka sink writes as Avro, with the
// writer schema in the sluice.schema header or registered with a schema
// registry, the Kafka source (a bounded group consumer) and the Avro decoder
// in the matching writer_schema mode read back row for row.
func TestKafkaSinkSourceRoundTrip(t *testing.T) {
	broker := cluster(t)
	reg := newRegistry(t)
	const n = 25
	for _, mode := range []avro.Mode{avro.ModeHeader, avro.ModeRegistry} {
		t.Run(string(mode), func(t *testing.T) {
			ctx := t.Context()
			topic := "roundtrip." + string(mode)
			opts := []kafka.Option{kafka.WithClientOpts(kgo.SeedBrokers(broker), kgo.AllowAutoTopicCreation())}
			var decOpts []avro.Option
			if mode == avro.ModeRegistry {
				rc, err := sr.NewClient(sr.URLs(reg.URL))
				if err != nil {
					t.Fatal(err)
				}
				opts = append(opts, kafka.WithRegistry(rc))
				decOpts = append(decOpts, avro.WithRegistry(rc))
			}
			s, err := kafka.New(ctx, kafka.Config{Topic: topic, Format: "avro"}, schema(), engine.SinkEnv{Job: "j", Pipeline: "p", Name: "kafka/0"}, opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(ctx)
			w, err := s.Open(ctx, engine.TaskID{Topic: "in"})
			if err != nil {
				t.Fatal(err)
			}
			row := engine.NewRow(4)
			var want []string
			for i := range n {
				fill(row, i)
				want = append(want, rowText(row))
				if err := w.Write(row); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			w.Close(ctx)

			dec, err := avro.NewDecoder(schema().Root, mode, decOpts...)
			if err != nil {
				t.Fatal(err)
			}
			recs := readBounded(t, broker, topic)
			// The rows may lie in several partitions: put them back in the
			// order they were written, by id.
			got := make([]string, n)
			out := engine.NewRow(4)
			for i := range recs {
				out.Reset(4)
				if err := dec.Decode(&recs[i], out); err != nil {
					t.Fatalf("record %d: %v", i, err)
				}
				if id := out.Int(0); id >= 0 && id < n && got[id] == "" {
					got[id] = rowText(out)
				} else {
					got = append(got, rowText(out)) // a duplicate or a stranger: shows in the diff
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("rows read back (-want +got):\n%s", diff)
			}
		})
	}
}

// rowText renders a row of schema() for comparison.
func rowText(r *engine.Row) string {
	country := "null"
	if !r.IsNull(3) {
		country = r.Str(3)
	}
	return fmt.Sprintf("id=%d user=%s action=%s country=%s", r.Int(0), r.Str(1), r.Slots[2].S, country)
}

// readBounded reads topic to its end with the Kafka source (stop_at: end) and
// returns its records in offset order.
func readBounded(t *testing.T, broker, topic string) []engine.Record {
	t.Helper()
	src, err := source.New(source.Config{Brokers: []string{broker}, Group: "roundtrip-" + topic, Topics: []string{topic}, StopAtEnd: true})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var h collector
	if err := src.Run(ctx, &h); err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatal("the bounded source did not end within a minute")
	}
	return h.recs
}

// collector is an engine.Handler that keeps every delivered record.
type collector struct {
	mu   sync.Mutex
	recs []engine.Record
}

func (c *collector) Assign(context.Context, []engine.Assignment) {}
func (c *collector) Revoke(context.Context, []engine.TaskID)     {}
func (c *collector) End(engine.TaskID)                           {}
func (c *collector) Deliver(_ engine.TaskID, recs []engine.Record) {
	c.mu.Lock()
	c.recs = append(c.recs, recs...)
	c.mu.Unlock()
}

// newRegistry is a schema registry that registers one schema per subject and
// serves schemas by id.
func newRegistry(t *testing.T) *httptest.Server {
	var mu sync.Mutex
	var schemas []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/subjects/"):
			var s sr.Schema
			_ = json.NewDecoder(r.Body).Decode(&s)
			schemas = append(schemas, s.Schema)
			fmt.Fprintf(w, `{"id":%d}`, len(schemas))
		case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/schemas/ids/"):
			var id int
			fmt.Sscan(strings.TrimPrefix(r.URL.Path, "/schemas/ids/"), &id)
			if id < 1 || id > len(schemas) {
				w.WriteHeader(http.StatusNotFound)
				fmt.Fprint(w, `{"error_code":40403,"message":"Schema not found"}`)
				return
			}
			b, _ := json.Marshal(map[string]string{"schema": schemas[id-1]})
			w.Write(b)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}
