package kafka_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/enginetest"
	"github.com/sluicehq/sluice/sink/kafka"
)

const install = "apt-get install -y kcat"

func cluster(t *testing.T) string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.Ports(enginetest.FreePort(t)), kfake.AllowAutoTopicCreation(), kfake.SeedTopics(1, "seeded"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

func schema() *engine.Schema {
	str := func() *engine.Type { return &engine.Type{Kind: engine.KindString} }
	return engine.MustSchema(&engine.Type{Kind: engine.KindRecord, Name: "acme.Denied", Fields: []engine.Field{
		{Name: "id", Type: &engine.Type{Kind: engine.KindLong}},
		{Name: "user", Type: str()},
		{Name: "action", Type: &engine.Type{Kind: engine.KindEnum, Name: "acme.Action", Symbols: []string{"ALLOW", "DENY"}}},
		{Name: "country", Type: &engine.Type{Kind: engine.KindUnion, Branches: []*engine.Type{{Kind: engine.KindNull}, str()}}},
	}})
}

func fill(row *engine.Row, i int) {
	row.Reset(4)
	row.SetInt(0, int64(i))
	row.SetStr(1, fmt.Sprintf("user-%d", i%3))
	row.Slots[2] = engine.Slot{N: uint64(i % 2), S: []string{"ALLOW", "DENY"}[i%2]}
	if i%5 == 0 {
		row.SetNull(3)
	} else {
		row.SetStr(3, "US")
	}
}

// kcat reads topic from the beginning to its end with Debian's kcat.
func kcat(t *testing.T, broker, topic string) []string {
	t.Helper()
	bin, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatalf("kcat not found: install it with `%s`", install)
	}
	out, err := exec.Command(bin, "-b", broker, "-C", "-t", topic, "-e", "-q", "-f", `%k\t%h\t%s\n`).CombinedOutput()
	if err != nil {
		t.Fatalf("kcat: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	sort.Strings(lines)
	return lines
}

func TestKafkaSinkKcat(t *testing.T) {
	broker := cluster(t)
	const n = 30
	for _, tc := range []struct {
		name          string
		transactional bool
	}{
		{"idempotent", false},
		{"transactional", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			topic := "denied." + tc.name
			cfg := kafka.Config{Topic: topic, Key: "user", Transactional: tc.transactional,
				Headers: map[string]string{"action": "action", "origin": "sluice-test"}}
			s, err := kafka.New(ctx, cfg, schema(), engine.SinkEnv{Job: "j", Pipeline: "p", Name: "kafka/0"},
				kafka.WithClientOpts(kgo.SeedBrokers(broker), kgo.AllowAutoTopicCreation()))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(ctx)
			w, err := s.Open(ctx, engine.TaskID{Topic: "in", Partition: 2})
			if err != nil {
				t.Fatal(err)
			}
			row := engine.NewRow(4)
			for i := range n {
				fill(row, i)
				row.Origin = engine.Origin{Task: engine.TaskID{Topic: "in", Partition: 2}, Offset: int64(i)}
				if err := w.Write(row); err != nil {
					t.Fatal(err)
				}
				if i%10 == 9 {
					if err := w.Flush(ctx); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := w.Close(ctx); err != nil {
				t.Fatal(err)
			}
			var want []string
			for i := range n {
				country := `"US"`
				if i%5 == 0 {
					country = "null"
				}
				action := []string{"ALLOW", "DENY"}[i%2]
				want = append(want, fmt.Sprintf("user-%d\taction=%s,origin=sluice-test\t{\"id\":%d,\"user\":\"user-%d\",\"action\":%q,\"country\":%s}",
					i%3, action, i, i%3, action, country))
			}
			sort.Strings(want)
			got := kcat(t, broker, topic)
			// Compare values as JSON, the rest as text.
			norm := func(lines []string) []string {
				var out []string
				for _, l := range lines {
					k, rest, _ := strings.Cut(l, "\t")
					h, v, _ := strings.Cut(rest, "\t")
					var m map[string]any
					if err := json.Unmarshal([]byte(v), &m); err != nil {
						t.Fatalf("value %q: %v", v, err)
					}
					b, _ := json.Marshal(m)
					out = append(out, k+"\t"+h+"\t"+string(b))
				}
				sort.Strings(out)
				return out
			}
			if diff := cmp.Diff(norm(want), norm(got)); diff != "" {
				t.Errorf("kcat read (-want +got):\n%s", diff)
			}
		})
	}
}

// TestKafkaSinkAvroRegistry: Avro values in Confluent framing with the id the
// registry gave, decodable with the registered schema.
func TestKafkaSinkAvroRegistry(t *testing.T) {
	ctx := t.Context()
	broker := cluster(t)
	var registered string
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
		if r.Method != http.MethodPost || r.URL.Path != "/subjects/denied.avro-value/versions" {
			t.Logf("registry: unexpected %s %s", r.Method, r.URL)
			http.NotFound(w, r)
			return
		}
		var s sr.Schema
		_ = json.NewDecoder(r.Body).Decode(&s)
		registered = s.Schema
		fmt.Fprint(w, `{"id":42}`)
	}))
	defer reg.Close()
	rc, err := sr.NewClient(sr.URLs(reg.URL))
	if err != nil {
		t.Fatal(err)
	}
	s, err := kafka.New(ctx, kafka.Config{Topic: "denied.avro", Format: "avro"}, schema(), engine.SinkEnv{},
		kafka.WithClientOpts(kgo.SeedBrokers(broker), kgo.AllowAutoTopicCreation()), kafka.WithRegistry(rc))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	w, err := s.Open(ctx, engine.TaskID{Topic: "in"})
	if err != nil {
		t.Fatal(err)
	}
	row := engine.NewRow(4)
	for i := range 3 {
		fill(row, i)
		if err := w.Write(row); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	codec, err := goavro.NewCodec(registered)
	if err != nil {
		t.Fatalf("registered schema %s: %v", registered, err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumeTopics("denied.avro"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got []any
	for len(got) < 3 {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if !bytes.HasPrefix(r.Value, []byte{0}) || binary.BigEndian.Uint32(r.Value[1:5]) != 42 {
				t.Errorf("value %x: not Confluent-framed with id 42", r.Value)
			}
			v, _, err := codec.NativeFromBinary(r.Value[5:])
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, v)
		})
	}
	want := []any{
		map[string]any{"id": int64(0), "user": "user-0", "action": "ALLOW", "country": nil},
		map[string]any{"id": int64(1), "user": "user-1", "action": "DENY", "country": map[string]any{"string": "US"}},
		map[string]any{"id": int64(2), "user": "user-2", "action": "ALLOW", "country": map[string]any{"string": "US"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("values (-want +got):\n%s", diff)
	}
}

// TestKafkaSinkDeadLetters: the sink as a dead-letter destination, rows of
// engine.DeadLetterSchema as JSON, read back by kcat.
func TestKafkaSinkDeadLetters(t *testing.T) {
	ctx := t.Context()
	broker := cluster(t)
	s, err := kafka.New(ctx, kafka.Config{Topic: "acme.dlq", Key: "topic"}, engine.DeadLetterSchema, engine.SinkEnv{},
		kafka.WithClientOpts(kgo.SeedBrokers(broker), kgo.AllowAutoTopicCreation()))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	w, err := s.Open(ctx, engine.TaskID{Topic: "in"})
	if err != nil {
		t.Fatal(err)
	}
	row := engine.NewRow(engine.DeadLetterSchema.Width())
	rec := &engine.Record{Value: []byte{0, 1, 2}, Offset: 7, Timestamp: time.UnixMicro(1700000000000000)}
	engine.FillDeadLetter(row, "p1", "decode", "bad magic byte", engine.TaskID{Topic: "acme.traffic", Partition: 3}, rec)
	if err := w.Write(row); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := kcat(t, broker, "acme.dlq")
	want := []string{"acme.traffic\t\t" + `{"pipeline":"p1","stage":"decode","error":"bad magic byte","topic":"acme.traffic","partition":3,"offset":7,"timestamp":"2023-11-14T22:13:20.000000Z","key":null,"value":"AAEC"}`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("kcat read (-want +got):\n%s", diff)
	}
}
