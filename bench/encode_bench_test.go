package bench

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/avro"
	"github.com/sluicehq/sluice/sink/encode"
)

// trafficType is traffic.avsc (testdata/schemas) as an engine.Type, written
// out so that this benchmark depends on no schema parser.
func trafficType() *engine.Type {
	str := func() *engine.Type { return &engine.Type{Kind: engine.KindString, EnumDefault: -1} }
	long := func() *engine.Type { return &engine.Type{Kind: engine.KindLong, EnumDefault: -1} }
	integer := func() *engine.Type { return &engine.Type{Kind: engine.KindInt, EnumDefault: -1} }
	ts := func() *engine.Type {
		return &engine.Type{Kind: engine.KindLong, Logical: engine.TimestampMicros, EnumDefault: -1}
	}
	opt := func(t *engine.Type) *engine.Type {
		return &engine.Type{Kind: engine.KindUnion, EnumDefault: -1, Branches: []*engine.Type{{Kind: engine.KindNull}, t}}
	}
	enum := func(name string, syms ...string) *engine.Type {
		return &engine.Type{Kind: engine.KindEnum, Name: "sluice.bench." + name, Symbols: syms, EnumDefault: -1}
	}
	null := []byte("null")
	loc := &engine.Type{Kind: engine.KindRecord, Name: "sluice.bench.Location", EnumDefault: -1, Fields: []engine.Field{
		{Name: "country", Type: str()},
		{Name: "region", Type: opt(str()), Default: null},
		{Name: "latitude", Type: opt(&engine.Type{Kind: engine.KindDouble}), Default: null},
		{Name: "longitude", Type: opt(&engine.Type{Kind: engine.KindDouble}), Default: null},
	}}
	f := func(name string, t *engine.Type) engine.Field { return engine.Field{Name: name, Type: t} }
	o := func(name string, t *engine.Type) engine.Field {
		return engine.Field{Name: name, Type: opt(t), Default: null}
	}
	return &engine.Type{Kind: engine.KindRecord, Name: "sluice.bench.TrafficLog", EnumDefault: -1, Fields: []engine.Field{
		f("receive_time", ts()), f("tenant_id", str()), f("serial", str()),
		f("log_type", enum("LogType", "TRAFFIC", "THREAT", "URL", "SYSTEM", "CONFIG")),
		f("subtype", str()), f("time_generated", ts()), f("src_ip", str()), f("dst_ip", str()),
		o("nat_src_ip", str()), o("nat_dst_ip", str()), f("rule", str()), o("src_user", str()), o("dst_user", str()),
		f("app", str()), f("vsys", str()), f("from_zone", str()), f("to_zone", str()),
		f("inbound_if", str()), f("outbound_if", str()), o("log_action", str()),
		f("session_id", long()), f("repeat_count", integer()), f("src_port", integer()), f("dst_port", integer()),
		f("nat_src_port", integer()), f("nat_dst_port", integer()), f("flags", long()),
		f("protocol", enum("Protocol", "TCP", "UDP", "ICMP", "OTHER")),
		f("action", enum("Action", "ALLOW", "DENY", "DROP", "RESET_CLIENT", "RESET_SERVER", "RESET_BOTH")),
		f("bytes_total", long()), f("bytes_sent", long()), f("bytes_received", long()), f("packets_total", long()),
		f("session_start", ts()), f("elapsed_seconds", integer()), o("url_category", str()),
		f("sequence_number", long()), f("action_flags", long()),
		f("src_location", loc), f("dst_location", loc),
		f("packets_sent", long()), f("packets_received", long()), f("session_end_reason", str()), f("device_name", str()),
		f("action_source", enum("ActionSource", "FROM_POLICY", "FROM_APPLICATION")),
		f("src_uuid", &engine.Type{Kind: engine.KindString, Logical: engine.UUID}), o("dst_uuid", str()),
		f("is_decrypted", &engine.Type{Kind: engine.KindBool}), f("is_threat", &engine.Type{Kind: engine.KindBool}),
		o("risk_score", &engine.Type{Kind: engine.KindFloat}),
		f("tags", &engine.Type{Kind: engine.KindArray, Items: str()}),
		f("labels", &engine.Type{Kind: engine.KindMap, Items: str()}),
		o("payload_hash", &engine.Type{Kind: engine.KindFixed, Name: "sluice.bench.SHA256", Size: 32}),
	}}
}

// trafficRows builds n rows of realistic traffic logs from a fixed seed,
// with the same values as map[string]any for the encoding/json baseline.
func trafficRows(s *engine.Schema, n int) ([]*engine.Row, []map[string]any) {
	r := rand.New(rand.NewPCG(42, 7))
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	ip := func() string { return fmt.Sprintf("10.%d.%d.%d", r.IntN(256), r.IntN(256), r.IntN(256)) }
	rows := make([]*engine.Row, n)
	maps := make([]map[string]any, n)
	base := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	for i := range rows {
		row := engine.NewRow(s.Width())
		m := map[string]any{}
		set := func(path string, v any) {
			c, ok := s.Lookup(path)
			if !ok {
				panic(path)
			}
			sl := &row.Slots[c.Slot]
			switch x := v.(type) {
			case nil:
				sl.Null = true
			case string:
				if c.Type.Kind == engine.KindEnum {
					for k, sym := range c.Type.Symbols {
						if sym == x {
							sl.N = uint64(k)
						}
					}
				}
				sl.S = x
			case int64:
				sl.N = uint64(x)
			case int32:
				sl.N = uint64(int64(x))
			case float64:
				sl.N = math.Float64bits(x)
			case float32:
				sl.N = math.Float64bits(float64(x))
			case bool:
				if x {
					sl.N = 1
				}
			case []byte:
				sl.S = string(x)
			}
			// the map holds what a generic pipeline would: time.Time for timestamps
			if c.Type.Logical == engine.TimestampMicros {
				v = time.UnixMicro(v.(int64)).UTC()
			}
			if p := bytes.IndexByte([]byte(path), '.'); p >= 0 {
				sub, _ := m[path[:p]].(map[string]any)
				if sub == nil {
					sub = map[string]any{}
					m[path[:p]] = sub
				}
				sub[path[p+1:]] = v
				return
			}
			m[path] = v
		}
		optStr := func(p int, v string) any {
			if r.IntN(100) < p {
				return nil
			}
			return v
		}
		t := base + int64(i)*1337 + r.Int64N(1000)
		set("receive_time", t+r.Int64N(5e6))
		set("tenant_id", pick("acme", "globex", "initech", "umbrella"))
		set("serial", fmt.Sprintf("0079%08d", r.IntN(1e8)))
		set("log_type", pick("TRAFFIC", "TRAFFIC", "THREAT", "URL"))
		set("subtype", pick("end", "start", "drop", "deny"))
		set("time_generated", t)
		set("src_ip", ip())
		set("dst_ip", ip())
		set("nat_src_ip", optStr(60, ip()))
		set("nat_dst_ip", optStr(60, ip()))
		set("rule", pick("allow-web", "deny-all", "allow-dns", "intrazone-default"))
		set("src_user", optStr(50, pick(`corp\alice`, `corp\bob`, "svc-backup")))
		set("dst_user", optStr(90, "admin"))
		set("app", pick("ssl", "web-browsing", "dns", "ms-office365", "incomplete"))
		set("vsys", "vsys1")
		set("from_zone", pick("trust", "untrust", "dmz"))
		set("to_zone", pick("trust", "untrust", "dmz"))
		set("inbound_if", pick("ethernet1/1", "ethernet1/2"))
		set("outbound_if", pick("ethernet1/3", "ethernet1/4"))
		set("log_action", optStr(30, "forward-to-siem"))
		set("session_id", r.Int64N(1<<40))
		set("repeat_count", int32(1+r.IntN(3)))
		set("src_port", int32(1024+r.IntN(60000)))
		set("dst_port", int32(pickInt(r, 443, 80, 53, 22)))
		set("nat_src_port", int32(r.IntN(65536)))
		set("nat_dst_port", int32(r.IntN(65536)))
		set("flags", r.Int64N(1<<32))
		set("protocol", pick("TCP", "TCP", "UDP", "ICMP"))
		set("action", pick("ALLOW", "ALLOW", "DENY", "DROP", "RESET_BOTH"))
		sent, recv := r.Int64N(1e6), r.Int64N(1e7)
		set("bytes_total", sent+recv)
		set("bytes_sent", sent)
		set("bytes_received", recv)
		set("packets_total", r.Int64N(1e4))
		set("session_start", t-r.Int64N(6e8))
		set("elapsed_seconds", int32(r.IntN(600)))
		set("url_category", optStr(40, pick("business-and-economy", "computer-and-internet-info", "news")))
		set("sequence_number", int64(i)+1e9)
		set("action_flags", r.Int64N(1<<62))
		for _, side := range []string{"src_location", "dst_location"} {
			set(side+".country", pick("US", "DE", "FR", "BR", "JP"))
			set(side+".region", optStr(20, pick("CA", "NY", "BY", "IDF")))
			if r.IntN(5) == 0 {
				set(side+".latitude", nil)
				set(side+".longitude", nil)
			} else {
				set(side+".latitude", r.Float64()*180-90)
				set(side+".longitude", r.Float64()*360-180)
			}
		}
		set("packets_sent", r.Int64N(1e4))
		set("packets_received", r.Int64N(1e4))
		set("session_end_reason", pick("aged-out", "tcp-fin", "tcp-rst-from-client", "policy-deny"))
		set("device_name", fmt.Sprintf("fw-%02d", r.IntN(40)))
		set("action_source", pick("FROM_POLICY", "FROM_APPLICATION"))
		set("src_uuid", fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", r.Uint32(), r.IntN(1<<16), r.IntN(1<<12), r.IntN(1<<12), r.Int64N(1<<48)))
		set("dst_uuid", optStr(70, "5c9a3c64-3a39-4b2e-9a51-0d1f4a3c2b10"))
		set("is_decrypted", r.IntN(4) == 0)
		set("is_threat", r.IntN(20) == 0)
		if r.IntN(2) == 0 {
			set("risk_score", nil)
		} else {
			set("risk_score", float32(r.Float64()*100))
		}
		tags := []any{}
		c, _ := s.Lookup("tags")
		nt := r.IntN(4)
		start := row.Grow(nt)
		for k := 0; k < nt; k++ {
			tg := pick("pci", "prod", "edge", "vpn", "guest")
			row.Ext[start+k].S = tg
			tags = append(tags, tg)
		}
		row.Slots[c.Slot].N, row.Slots[c.Slot].L = uint64(start), int32(nt)
		m["tags"] = tags
		labels := map[string]any{}
		c, _ = s.Lookup("labels")
		nl := r.IntN(3)
		start = row.Grow(2 * nl)
		for k := 0; k < nl; k++ {
			key, val := fmt.Sprintf("l%d", k), pick("blue", "green", "canary")
			row.Ext[start+2*k].S, row.Ext[start+2*k+1].S = key, val
			labels[key] = val
		}
		row.Slots[c.Slot].N, row.Slots[c.Slot].L = uint64(start), int32(nl)
		m["labels"] = labels
		if r.IntN(3) == 0 {
			set("payload_hash", nil)
		} else {
			h := make([]byte, 32)
			for k := range h {
				h[k] = byte(r.Uint32())
			}
			set("payload_hash", h)
		}
		rows[i], maps[i] = row, m
	}
	return rows, maps
}

func pickInt(r *rand.Rand, xs ...int) int { return xs[r.IntN(len(xs))] }

// BenchmarkEncode encodes traffic rows with each encoder; encoding_json is
// encoding/json over map[string]any of the same values, the baseline of a
// pipeline built on generic records. One op is one row.
func BenchmarkEncode(b *testing.B) {
	s := engine.MustSchema(trafficType())
	rows, maps := trafficRows(s, 1024)
	j, _ := encode.NewJSON(s)
	c, _ := encode.NewCSV(s)
	a, _ := encode.NewAvro(s)
	checkOutputs(b, s, rows, maps, j, c, a)

	run := func(b *testing.B, enc func(dst []byte, i int) ([]byte, error)) {
		buf := make([]byte, 0, 1<<20)
		var err error
		var total int
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if len(buf) > 1<<19 {
				total += len(buf)
				buf = buf[:0]
			}
			if buf, err = enc(buf, i%len(rows)); err != nil {
				b.Fatal(err)
			}
		}
		total += len(buf)
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		b.ReportMetric(float64(total)/float64(b.N), "bytes/row")
	}
	b.Run("json", func(b *testing.B) {
		run(b, func(dst []byte, i int) ([]byte, error) { return j.Append(dst, rows[i]) })
	})
	b.Run("csv", func(b *testing.B) {
		run(b, func(dst []byte, i int) ([]byte, error) { return c.Append(dst, rows[i]) })
	})
	b.Run("avro", func(b *testing.B) {
		run(b, func(dst []byte, i int) ([]byte, error) { return a.Append(dst, rows[i]) })
	})
	b.Run("encoding_json", func(b *testing.B) {
		run(b, func(dst []byte, i int) ([]byte, error) {
			out, err := json.Marshal(maps[i])
			return append(dst, out...), err
		})
	})
}

// checkOutputs makes sure that the encoders are right before timing them: the
// JSON decodes to what encoding/json made of the map, the Avro decodes with
// goavro to the same values, the CSV parses to the right shape.
func checkOutputs(b *testing.B, s *engine.Schema, rows []*engine.Row, maps []map[string]any, j, c, a encode.Encoder) {
	js, err := avro.Schema(s.Root)
	if err != nil {
		b.Fatal(err)
	}
	codec, err := goavro.NewCodec(string(js))
	if err != nil {
		b.Fatal(err)
	}
	var csvOut []byte
	for i := range 100 {
		out, err := j.Append(nil, rows[i])
		if err != nil {
			b.Fatal(err)
		}
		var got, want map[string]any
		if err := json.Unmarshal(out, &got); err != nil {
			b.Fatal(err)
		}
		ref, _ := json.Marshal(maps[i])
		if err := json.Unmarshal(ref, &want); err != nil {
			b.Fatal(err)
		}
		for _, k := range []string{"receive_time", "time_generated", "session_start"} {
			tg, err1 := time.Parse(time.RFC3339Nano, got[k].(string))
			tw, err2 := time.Parse(time.RFC3339Nano, want[k].(string))
			if err1 != nil || err2 != nil || !tg.Equal(tw) {
				b.Fatalf("row %d %s: %v, want %v", i, k, got[k], want[k])
			}
			delete(got, k)
			delete(want, k)
		}
		if g, w := fmt.Sprint(got), fmt.Sprint(want); g != w {
			b.Fatalf("row %d json:\n got %s\nwant %s", i, g, w)
		}
		bin, err := a.Append(nil, rows[i])
		if err != nil {
			b.Fatal(err)
		}
		native, rest, err := codec.NativeFromBinary(bin)
		if err != nil || len(rest) > 0 {
			b.Fatalf("row %d avro: %v", i, err)
		}
		nm := native.(map[string]any)
		if nm["serial"] != maps[i]["serial"] || nm["session_id"] != maps[i]["session_id"] || nm["action"] != maps[i]["action"] {
			b.Fatalf("row %d avro: %v", i, native)
		}
		if csvOut, err = c.Append(csvOut, rows[i]); err != nil {
			b.Fatal(err)
		}
	}
	recs, err := csv.NewReader(bytes.NewReader(csvOut)).ReadAll()
	if err != nil || len(recs) != 100 || len(recs[0]) != len(s.Paths())-2 {
		b.Fatalf("csv: %v, %d records", err, len(recs))
	}
}
