package avro

import (
	"bytes"
	"errors"
	"io"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluicehq/sluice/engine"
)

// TestLong pins the zig-zag varint encoding of the specification's
// examples and of the edges, and reads each back.
func TestLong(t *testing.T) {
	for _, tc := range []struct {
		v    int64
		want []byte
	}{
		{0, []byte{0x00}},
		{-1, []byte{0x01}},
		{1, []byte{0x02}},
		{-2, []byte{0x03}},
		{2, []byte{0x04}},
		{-64, []byte{0x7f}},
		{64, []byte{0x80, 0x01}},
		{math.MaxInt32, []byte{0xfe, 0xff, 0xff, 0xff, 0x0f}},
		{math.MinInt64, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{math.MaxInt64, []byte{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
	} {
		got := AppendLong(nil, tc.v)
		if !bytes.Equal(got, tc.want) {
			t.Errorf("AppendLong(%d) = % x, want % x", tc.v, got, tc.want)
		}
		// Read both from a short buffer and from one with ten bytes left
		// (the unrolled path).
		for _, buf := range [][]byte{got, append(got, make([]byte, 10)...)} {
			v, n, err := ReadLong(buf)
			if err != nil || v != tc.v || n != len(tc.want) {
				t.Errorf("ReadLong(% x) = %d, %d, %v; want %d, %d", buf, v, n, err, tc.v, len(tc.want))
			}
		}
	}
}

func TestUvarintErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"cut", []byte{0x80, 0x80}, ErrTruncated},
		{"eleven bytes", bytes.Repeat([]byte{0xff}, 11), ErrVarintOverflow},
		{"over 64 bits", append(bytes.Repeat([]byte{0xff}, 9), 0x02), ErrVarintOverflow},
		{"over 64 bits, padded", append(append(bytes.Repeat([]byte{0xff}, 9), 0x02), 0, 0), ErrVarintOverflow},
	} {
		if _, _, err := Uvarint(tc.in, 0); !errors.Is(err, tc.want) {
			t.Errorf("%s: Uvarint(% x) error %v, want %v", tc.name, tc.in, err, tc.want)
		}
		if _, err := readLong(bytes.NewReader(tc.in)); tc.want == ErrVarintOverflow && !errors.Is(err, tc.want) {
			t.Errorf("%s: readLong(% x) error %v, want %v", tc.name, tc.in, err, tc.want)
		}
	}
}

// FuzzVarint checks that every primitive reads back what was appended, and
// that reading arbitrary bytes never panics and agrees between the slice
// and the stream readers.
func FuzzVarint(f *testing.F) {
	f.Add(int64(0), "", 0.0, []byte{0x80})
	f.Add(int64(-1), "sluice", math.Inf(-1), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add(int64(math.MinInt64), "ü\x00", math.NaN(), bytes.Repeat([]byte{0x80}, 12))
	f.Fuzz(func(t *testing.T, v int64, s string, d float64, raw []byte) {
		buf := AppendLong(nil, v)
		buf = AppendString(buf, s)
		buf = AppendDouble(buf, d)
		buf = AppendFloat(buf, float32(d))
		buf = AppendBool(buf, v&1 == 1)
		gv, n, err := ReadLong(buf)
		if err != nil || gv != v {
			t.Fatalf("long %d read back as %d, %v", v, gv, err)
		}
		l, m, err := ReadLong(buf[n:])
		if err != nil || l != int64(len(s)) || string(buf[n+m:n+m+int(l)]) != s {
			t.Fatalf("string %q does not read back: length %d, %v", s, l, err)
		}
		rest := buf[n+m+int(l):]
		if len(rest) != 8+4+1 {
			t.Fatalf("%d bytes after the string, want 13", len(rest))
		}
		if got := math.Float64frombits(leUint64(rest)); got != d && !(math.IsNaN(d) && math.IsNaN(got)) {
			t.Fatalf("double %v read back as %v", d, got)
		}
		if rest[12] != byte(v&1) {
			t.Fatalf("bool %v written as %d", v&1 == 1, rest[12])
		}

		u, n, err := Uvarint(raw, 0)
		su, serr := readLong(bytes.NewReader(raw))
		if (err == nil) != (serr == nil) {
			t.Fatalf("Uvarint error %v, stream error %v on % x", err, serr, raw)
		}
		if err != nil {
			return
		}
		if n < 1 || n > MaxVarintLen || Unzag(u) != su {
			t.Fatalf("Uvarint(% x) = %d after %d bytes, stream %d", raw, Unzag(u), n, su)
		}
		again, _, err := ReadLong(AppendLong(nil, Unzag(u)))
		if err != nil || again != Unzag(u) {
			t.Fatalf("%d does not survive a second round trip: %d, %v", Unzag(u), again, err)
		}
	})
}

func leUint64(b []byte) uint64 {
	var u uint64
	for i := 7; i >= 0; i-- {
		u = u<<8 | uint64(b[i])
	}
	return u
}

// FuzzContainer writes records with a Container, every codec, and reads
// them back with a BlockReader: the blocks, counts, header and sync marker
// must come back as written.
func FuzzContainer(f *testing.F) {
	f.Add([]byte("\x03abc\x00\x05hello"), uint8(0), uint8(2))
	f.Add(bytes.Repeat([]byte("\x10sluice sluice!!"), 40), uint8(1), uint8(3))
	f.Add([]byte{}, uint8(2), uint8(1))
	f.Add([]byte("\x01x\x01y\x01z"), uint8(3), uint8(0))
	codecs := []Codec{CodecNull, CodecDeflate, CodecSnappy, CodecZstd}
	f.Fuzz(func(t *testing.T, data []byte, codecIdx, perBlock uint8) {
		codec := codecs[int(codecIdx)%len(codecs)]
		// Split data into records, each a length byte then that many bytes.
		var recs [][]byte
		for len(data) > 0 {
			n := min(int(data[0]), len(data)-1)
			recs = append(recs, data[1:1+n])
			data = data[1+n:]
		}
		per := max(int(perBlock), 1)
		schema := []byte(`"bytes"`)
		sync := bytes.Repeat([]byte{0xa5}, SyncSize)
		c, err := NewContainer(schema, codec, sync)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		file := c.AppendHeader(nil)
		var wantBlocks [][]byte
		var wantCounts []int64
		for i := 0; i < len(recs); i += per {
			end := min(i+per, len(recs))
			block := bytes.Join(recs[i:end], nil)
			if file, err = c.AppendBlock(file, end-i, block); err != nil {
				t.Fatal(err)
			}
			wantBlocks, wantCounts = append(wantBlocks, block), append(wantCounts, int64(end-i))
		}

		h, err := ReadHeader(bytes.NewReader(file))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]any{string(schema), codec, sync}, []any{string(h.Schema), h.Codec, h.Sync[:]}); diff != "" {
			t.Fatalf("header (-want +got):\n%s", diff)
		}
		r, err := NewBlockReader(bytes.NewReader(file))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		var gotBlocks [][]byte
		var gotCounts []int64
		for {
			n, b, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			gotBlocks, gotCounts = append(gotBlocks, b), append(gotCounts, n)
		}
		if diff := cmp.Diff(wantCounts, gotCounts); diff != "" {
			t.Fatalf("counts (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(wantBlocks, gotBlocks, cmp.Comparer(bytes.Equal)); diff != "" {
			t.Fatalf("blocks (-want +got):\n%s", diff)
		}
	})
}

// TestReadHeaderSpecForms reads a header that Container never writes but
// the specification allows: two metadata blocks, one with a negative count
// and a byte size, an empty codec.
func TestReadHeaderSpecForms(t *testing.T) {
	var b []byte
	b = append(b, Magic[:]...)
	entry := AppendString(AppendString(nil, MetaSchema), `"long"`)
	b = AppendLong(b, -1)
	b = AppendLong(b, int64(len(entry)))
	b = append(b, entry...)
	b = AppendLong(b, 2)
	b = AppendString(AppendString(b, MetaCodec), "")
	b = AppendString(AppendString(b, "user.key"), "v")
	b = append(b, 0)
	b = append(b, bytes.Repeat([]byte{7}, SyncSize)...)
	h, err := ReadHeader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if string(h.Schema) != `"long"` || h.Codec != CodecNull || string(h.Meta["user.key"]) != "v" || h.Sync[0] != 7 {
		t.Errorf("header %+v", h)
	}
	for _, bad := range [][]byte{b[:3], append([]byte("Obj\x02"), b[4:]...), b[:len(b)-1]} {
		if _, err := ReadHeader(bytes.NewReader(bad)); !errors.Is(err, ErrCorruptOCF) {
			t.Errorf("ReadHeader(% x) error %v, want ErrCorruptOCF", bad, err)
		}
	}
}

// TestSchemaForms writes one type in both forms: the canonical form drops
// what reading does not need, the full form keeps it and names the
// unnamed.
func TestSchemaForms(t *testing.T) {
	enum := &engine.Type{Kind: engine.KindEnum, Name: "ns.Color", Symbols: []string{"RED", "GREEN"}, EnumDefault: 0}
	ts := &engine.Type{Kind: engine.KindLong, Logical: engine.TimestampMicros, EnumDefault: -1}
	root := &engine.Type{Kind: engine.KindRecord, Doc: "a <row>", EnumDefault: -1, Fields: []engine.Field{
		{Name: "at", Type: ts},
		{Name: "color", Type: enum, Default: []byte(`"GREEN"`), Aliases: []string{"colour"}},
		{Name: "again", Type: enum},
		{Name: "tags", Type: &engine.Type{Kind: engine.KindArray, Items: &engine.Type{Kind: engine.KindString}}},
		{Name: "sub", Type: &engine.Type{Kind: engine.KindRecord, Fields: []engine.Field{{Name: "x-y", Type: &engine.Type{Kind: engine.KindInt}}}}},
	}}
	full, err := Schema(root)
	if err != nil {
		t.Fatal(err)
	}
	wantFull := `{"name":"sluice.Row","type":"record","doc":"a <row>","fields":[` +
		`{"name":"at","type":{"type":"long","logicalType":"timestamp-micros"}},` +
		`{"name":"color","type":{"name":"ns.Color","type":"enum","symbols":["RED","GREEN"],"default":"RED"},"default":"GREEN","aliases":["colour"]},` +
		`{"name":"again","type":"ns.Color"},` +
		`{"name":"tags","type":{"type":"array","items":"string"}},` +
		`{"name":"sub","type":{"name":"sluice.Row_sub","type":"record","fields":[{"name":"x_y","type":"int"}]}}]}`
	if diff := cmp.Diff(wantFull, string(full)); diff != "" {
		t.Errorf("Schema (-want +got):\n%s", diff)
	}
	wantCanon := `{"name":"sluice.Row","type":"record","fields":[` +
		`{"name":"at","type":"long"},` +
		`{"name":"color","type":{"name":"ns.Color","type":"enum","symbols":["RED","GREEN"]}},` +
		`{"name":"again","type":"ns.Color"},` +
		`{"name":"tags","type":{"type":"array","items":"string"}},` +
		`{"name":"sub","type":{"name":"sluice.Row_sub","type":"record","fields":[{"name":"x_y","type":"int"}]}}]}`
	if diff := cmp.Diff(wantCanon, string(Canonical(root))); diff != "" {
		t.Errorf("Canonical (-want +got):\n%s", diff)
	}
	if Fingerprint(root) != Rabin([]byte(wantCanon)) {
		t.Error("Fingerprint is not the Rabin fingerprint of the canonical form")
	}
	if got := Rabin([]byte(`"null"`)); int64(got) != 7195948357588979594 {
		t.Errorf(`Rabin("null") = %d, want the specification's 7195948357588979594`, int64(got))
	}
}

func TestConfluent(t *testing.T) {
	b := AppendConfluent(nil, 0x01020304)
	if !bytes.Equal(b, []byte{0, 1, 2, 3, 4}) {
		t.Fatalf("framing % x", b)
	}
	id, datum, ok := ParseConfluent(append(b, 42))
	if !ok || id != 0x01020304 || !bytes.Equal(datum, []byte{42}) {
		t.Errorf("ParseConfluent = %x, % x, %v", id, datum, ok)
	}
	for _, bad := range [][]byte{nil, {0, 1, 2, 3}, {1, 0, 0, 0, 1}} {
		if _, _, ok := ParseConfluent(bad); ok {
			t.Errorf("ParseConfluent(% x) accepted", bad)
		}
	}
}
