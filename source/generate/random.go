package generate

import (
	"math/rand"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/avro"
)

// Random writes seeded random Avro datums of any schema: the generator of
// a generate source whose schema is not the traffic schema. It is
// deterministic for a seed and not safe for concurrent use.
//
// Values are of their type and plausible for it: ints and longs small and
// non-negative, timestamps (and dates and times of day) advancing from
// the start time like the traffic generator's, strings of 3 to 12
// lower-case letters, uuids well formed, decimals within their precision,
// unions null one time in five when they can be, arrays and maps of 0 to 3
// items.
type Random struct {
	t   *engine.Type
	rnd *rand.Rand
	now int64 // microseconds
}

// NewRandom returns a generator of datums of t seeded with seed, whose
// timestamps start at start (Unix microseconds).
func NewRandom(t *engine.Type, seed, start int64) *Random {
	return &Random{t: t, rnd: rand.New(rand.NewSource(seed)), now: start}
}

// AppendAvro appends the binary encoding of the next datum.
func (g *Random) AppendAvro(dst []byte) []byte {
	g.now += int64(g.rnd.ExpFloat64() * 200)
	return g.value(dst, g.t)
}

const letters = "abcdefghijklmnopqrstuvwxyz"

func (g *Random) value(dst []byte, t *engine.Type) []byte {
	r := g.rnd
	switch t.Kind {
	case engine.KindNull:
		return dst
	case engine.KindBool:
		return avro.AppendBool(dst, r.Intn(2) == 1)
	case engine.KindInt:
		switch t.Logical {
		case engine.Date:
			return avro.AppendLong(dst, g.now/86_400_000_000)
		case engine.TimeMillis:
			return avro.AppendLong(dst, g.now/1000%86_400_000)
		}
		return avro.AppendLong(dst, int64(r.Intn(1000)))
	case engine.KindLong:
		switch t.Logical {
		case engine.TimestampMicros, engine.LocalTimestampMicros:
			return avro.AppendLong(dst, g.now)
		case engine.TimestampMillis, engine.LocalTimestampMillis:
			return avro.AppendLong(dst, g.now/1000)
		case engine.TimeMicros:
			return avro.AppendLong(dst, g.now%86_400_000_000)
		}
		return avro.AppendLong(dst, r.Int63n(1_000_000))
	case engine.KindFloat:
		return avro.AppendFloat(dst, float32(r.Float64()*1000))
	case engine.KindDouble:
		return avro.AppendDouble(dst, r.Float64()*1000)
	case engine.KindString:
		if t.Logical == engine.UUID {
			return avro.AppendString(dst, uuid(r))
		}
		return g.word(dst)
	case engine.KindBytes:
		if t.Logical == engine.Decimal && t.Precision > 0 && t.Precision <= 18 {
			return appendDecimal(dst, r, t.Precision)
		}
		n := r.Intn(17)
		dst = avro.AppendLong(dst, int64(n))
		for range n {
			dst = append(dst, byte(r.Intn(256)))
		}
		return dst
	case engine.KindFixed:
		for range t.Size {
			dst = append(dst, byte(r.Intn(256)))
		}
		return dst
	case engine.KindEnum:
		return avro.AppendLong(dst, int64(r.Intn(max(1, len(t.Symbols)))))
	case engine.KindRecord:
		for i := range t.Fields {
			dst = g.value(dst, t.Fields[i].Type)
		}
		return dst
	case engine.KindArray, engine.KindMap:
		if n := r.Intn(4); n > 0 {
			dst = avro.AppendLong(dst, int64(n))
			for range n {
				if t.Kind == engine.KindMap {
					dst = g.word(dst)
				}
				dst = g.value(dst, t.Items)
			}
		}
		return append(dst, 0)
	case engine.KindUnion:
		null := -1
		for i, b := range t.Branches {
			if b.Kind == engine.KindNull {
				null = i
			}
		}
		i := r.Intn(len(t.Branches))
		switch {
		case null >= 0 && r.Intn(5) == 0:
			i = null
		case i == null:
			i = (i + 1) % len(t.Branches)
		}
		return g.value(avro.AppendLong(dst, int64(i)), t.Branches[i])
	}
	return dst
}

// word appends a string of 3 to 12 lower-case letters.
func (g *Random) word(dst []byte) []byte {
	n := 3 + g.rnd.Intn(10)
	dst = avro.AppendLong(dst, int64(n))
	for range n {
		dst = append(dst, letters[g.rnd.Intn(len(letters))])
	}
	return dst
}

// appendDecimal appends, as Avro bytes, an unscaled value of at most
// precision digits in the fewest bytes of big-endian two's complement.
func appendDecimal(dst []byte, r *rand.Rand, precision int) []byte {
	lim := int64(1)
	for range precision {
		lim *= 10
	}
	v := r.Int63n(2*lim-1) - (lim - 1)
	var b [8]byte
	for i := range b {
		b[7-i] = byte(v >> (8 * i))
	}
	k := 0
	for k < 7 && (b[k] == 0 && b[k+1]&0x80 == 0 || b[k] == 0xff && b[k+1]&0x80 != 0) {
		k++
	}
	return avro.AppendBytes(dst, b[k:])
}
