package avro

import (
	"math"
	"math/big"
	"time"

	"github.com/sluicehq/sluice/engine"
)

// rowNative converts a decoded row to goavro's native form, so that the two
// decoders can be compared value by value.
func rowNative(rec *engine.Type, row *engine.Row) map[string]any {
	return recordNative(rec, row, row.Slots, -1)
}

func recordNative(t *engine.Type, row *engine.Row, area []engine.Slot, base int) map[string]any {
	m := make(map[string]any, len(t.Fields))
	for _, f := range t.Fields {
		m[f.Name] = valueNative(f.Type, row, area, base+f.Slot)
	}
	return m
}

// goavroName is the key goavro uses for a union branch.
func goavroName(t *engine.Type) string {
	switch t.Kind {
	case engine.KindRecord, engine.KindEnum, engine.KindFixed:
		return t.Name
	}
	return t.Kind.String()
}

func valueNative(t *engine.Type, row *engine.Row, area []engine.Slot, i int) any {
	s := area[i]
	switch t.Kind {
	case engine.KindNull:
		return nil
	case engine.KindBool:
		return s.N != 0
	case engine.KindInt:
		v := int32(int64(s.N))
		switch t.Logical {
		case engine.Date:
			return time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, int(v)).UTC()
		case engine.TimeMillis:
			return time.Duration(v) * time.Millisecond
		}
		return v
	case engine.KindLong:
		v := int64(s.N)
		switch t.Logical {
		case engine.TimestampMillis:
			return time.UnixMilli(v).UTC()
		case engine.TimestampMicros:
			sec := v / 1e6
			return time.Unix(sec, (v-sec*1e6)*1e3).UTC()
		case engine.TimeMicros:
			return time.Duration(v) * time.Microsecond
		}
		return v
	case engine.KindFloat:
		return float32(math.Float64frombits(s.N))
	case engine.KindDouble:
		return math.Float64frombits(s.N)
	case engine.KindString, engine.KindEnum:
		return s.S
	case engine.KindBytes, engine.KindFixed:
		if t.Logical == engine.Decimal {
			n := new(big.Int).SetBytes([]byte(s.S))
			if len(s.S) > 0 && s.S[0]&0x80 != 0 {
				n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(s.S))))
			}
			return new(big.Rat).SetFrac(n, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(t.Scale)), nil))
		}
		return []byte(s.S)
	case engine.KindRecord:
		if s.Null {
			return nil
		}
		return recordNative(t, row, area, i)
	case engine.KindArray:
		w := t.Items.Width()
		out := make([]any, s.L)
		for k := range out {
			out[k] = valueNative(t.Items, row, row.Ext, int(s.N)+k*w)
		}
		return out
	case engine.KindMap:
		w := 1 + t.Items.Width()
		out := make(map[string]any, s.L)
		for k := 0; k < int(s.L); k++ {
			e := int(s.N) + k*w
			out[row.Ext[e].S] = valueNative(t.Items, row, row.Ext, e+1)
		}
		return out
	case engine.KindUnion:
		if inner, ok := t.Nullable(); ok {
			if s.Null {
				return nil
			}
			return map[string]any{goavroName(inner): valueNative(inner, row, area, i)}
		}
		b := t.Branches[s.N]
		if b.Kind == engine.KindNull {
			return nil
		}
		return map[string]any{goavroName(b): valueNative(b, row, area, i+t.BranchSlot(int(s.N)))}
	}
	return nil
}
