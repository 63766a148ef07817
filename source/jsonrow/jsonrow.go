package jsonrow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/engine"
)

// Errors of records that do not fit the schema.
var (
	ErrSyntax   = errors.New("invalid JSON")
	ErrType     = errors.New("value of the wrong type")
	ErrMissing  = errors.New("missing field with no default")
	ErrTooLarge = errors.New("too many array or map elements")
)

// MaxElements bounds the array and map element slots of one record.
const MaxElements = 1 << 20

// Decoder decodes JSON records into rows of one schema.
type Decoder struct {
	root   *engine.Type
	schema *engine.Schema
}

// New returns a decoder for rows of root, a record type (avro.ParseSchema).
func New(root *engine.Type) (*Decoder, error) {
	s, err := engine.NewSchema(root)
	if err != nil {
		return nil, fmt.Errorf("jsonrow: %w", err)
	}
	return &Decoder{root: root, schema: s}, nil
}

// Schema is the rows' schema.
func (d *Decoder) Schema() *engine.Schema { return d.schema }

type state struct {
	row *engine.Row
}

type fieldError struct {
	path string
	err  error
}

func fail(path string, err error) error { return &fieldError{path, err} }

func (e *fieldError) Error() string { return e.path + ": " + e.err.Error() }

// Decode decodes rec.Value into row.
func (d *Decoder) Decode(rec *engine.Record, row *engine.Row) error {
	dec := json.NewDecoder(bytes.NewReader(rec.Value))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return &engine.DecodeError{Origin: engine.Origin{Offset: rec.Offset}, Err: fmt.Errorf("%w: %v", ErrSyntax, err)}
	}
	if dec.More() {
		return &engine.DecodeError{Origin: engine.Origin{Offset: rec.Offset}, Err: fmt.Errorf("%w: data after the object", ErrSyntax)}
	}
	if len(row.Slots) < d.schema.Width() {
		row.Reset(d.schema.Width())
	}
	st := &state{row: row}
	obj, ok := v.(map[string]any)
	if !ok {
		return &engine.DecodeError{Origin: engine.Origin{Offset: rec.Offset}, Err: fmt.Errorf("%w: a record must be an object", ErrType)}
	}
	if err := st.fields(d.root, obj, -1, false, ""); err != nil {
		var fe *fieldError
		if errors.As(err, &fe) {
			return &engine.DecodeError{Origin: engine.Origin{Offset: rec.Offset}, Field: fe.path, Err: fe.err}
		}
		return &engine.DecodeError{Origin: engine.Origin{Offset: rec.Offset}, Err: err}
	}
	return nil
}

func (st *state) slot(ext bool, i int) *engine.Slot {
	if ext {
		return &st.row.Ext[i]
	}
	return &st.row.Slots[i]
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func (st *state) fields(t *engine.Type, obj map[string]any, base int, ext bool, path string) error {
	for _, f := range t.Fields {
		fp := join(path, f.Name)
		v, ok := obj[f.Name]
		if !ok {
			for _, a := range f.Aliases {
				if v, ok = obj[a]; ok {
					break
				}
			}
		}
		if !ok {
			switch {
			case f.Default != nil:
				dec := json.NewDecoder(bytes.NewReader(f.Default))
				dec.UseNumber()
				if err := dec.Decode(&v); err != nil {
					return fail(fp, err)
				}
			case f.Type.NullIndex() >= 0:
				v = nil
			default:
				return fail(fp, ErrMissing)
			}
		}
		if err := st.value(f.Type, v, base+f.Slot, ext, fp); err != nil {
			return err
		}
	}
	return nil
}

func accepts(t *engine.Type, v any) bool {
	switch v.(type) {
	case nil:
		return t.Kind == engine.KindNull
	case bool:
		return t.Kind == engine.KindBool
	case json.Number:
		switch t.Kind {
		case engine.KindInt, engine.KindLong, engine.KindFloat, engine.KindDouble:
			return true
		}
	case string:
		switch t.Kind {
		case engine.KindString, engine.KindBytes, engine.KindFixed, engine.KindEnum:
			return true
		case engine.KindInt, engine.KindLong:
			return t.Logical != engine.NoLogical
		}
	case []any:
		return t.Kind == engine.KindArray
	case map[string]any:
		return t.Kind == engine.KindRecord || t.Kind == engine.KindMap
	}
	return false
}

func (st *state) value(t *engine.Type, v any, i int, ext bool, path string) error {
	if t.Kind == engine.KindUnion {
		return st.union(t, v, i, ext, path)
	}
	s := st.slot(ext, i)
	switch t.Kind {
	case engine.KindNull:
		if v != nil {
			return fail(path, ErrType)
		}
		s.Null = true
	case engine.KindBool:
		b, ok := v.(bool)
		if !ok {
			return fail(path, ErrType)
		}
		if b {
			s.N = 1
		}
	case engine.KindInt, engine.KindLong:
		n, err := integer(t, v)
		if err != nil {
			return fail(path, err)
		}
		s.N = uint64(n)
	case engine.KindFloat, engine.KindDouble:
		n, ok := v.(json.Number)
		if !ok {
			return fail(path, ErrType)
		}
		f, err := strconv.ParseFloat(n.String(), 64)
		if err != nil {
			return fail(path, fmt.Errorf("%w: %v", ErrType, err))
		}
		if t.Kind == engine.KindFloat {
			f = float64(float32(f))
		}
		s.N = math.Float64bits(f)
	case engine.KindString:
		str, ok := v.(string)
		if !ok {
			return fail(path, ErrType)
		}
		s.S = str
	case engine.KindBytes, engine.KindFixed:
		b, err := bytesOf(t, v)
		if err != nil {
			return fail(path, err)
		}
		if t.Kind == engine.KindFixed && len(b) != t.Size {
			return fail(path, fmt.Errorf("%w: fixed of %d bytes, want %d", ErrType, len(b), t.Size))
		}
		s.S = b
	case engine.KindEnum:
		str, ok := v.(string)
		if !ok {
			return fail(path, ErrType)
		}
		idx := -1
		for k, sym := range t.Symbols {
			if sym == str {
				idx = k
			}
		}
		if idx < 0 {
			idx = t.EnumDefault
		}
		if idx < 0 {
			return fail(path, fmt.Errorf("%w: %q is not a symbol of %s", ErrType, str, t.Name))
		}
		s.N, s.S = uint64(idx), t.Symbols[idx]
	case engine.KindRecord:
		obj, ok := v.(map[string]any)
		if !ok {
			return fail(path, ErrType)
		}
		return st.fields(t, obj, i, ext, path)
	case engine.KindArray:
		arr, ok := v.([]any)
		if !ok {
			return fail(path, ErrType)
		}
		w := t.Items.Width()
		if len(st.row.Ext)+len(arr)*w > MaxElements {
			return fail(path, ErrTooLarge)
		}
		start := st.row.Grow(len(arr) * w)
		for k, e := range arr {
			if err := st.value(t.Items, e, start+k*w, true, path+"[]"); err != nil {
				return err
			}
		}
		s = st.slot(ext, i) // Grow may have moved Ext
		if len(arr) == 0 {
			start = 0
		}
		s.N, s.L = uint64(start), int32(len(arr))
	case engine.KindMap:
		obj, ok := v.(map[string]any)
		if !ok {
			return fail(path, ErrType)
		}
		w := 1 + t.Items.Width()
		if len(st.row.Ext)+len(obj)*w > MaxElements {
			return fail(path, ErrTooLarge)
		}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		start := st.row.Grow(len(obj) * w)
		for k, key := range keys {
			e := start + k*w
			st.row.Ext[e].S = key
			if err := st.value(t.Items, obj[key], e+1, true, path+"{}"); err != nil {
				return err
			}
		}
		s = st.slot(ext, i)
		if len(obj) == 0 {
			start = 0
		}
		s.N, s.L = uint64(start), int32(len(obj))
	}
	return nil
}

func (st *state) union(t *engine.Type, v any, i int, ext bool, path string) error {
	if inner, ok := t.Nullable(); ok {
		if v == nil {
			*st.slot(ext, i) = engine.Slot{Null: true}
			return nil
		}
		if m, ok := v.(map[string]any); ok && len(m) == 1 && inner.Kind != engine.KindRecord && inner.Kind != engine.KindMap {
			for _, bv := range m {
				v = bv
			}
		}
		return st.value(inner, v, i, ext, path)
	}
	pick := -1
	if m, ok := v.(map[string]any); ok && len(m) == 1 {
		for name, bv := range m {
			for k, b := range t.Branches {
				if branchName(b) == name || b.Name != "" && strings.HasSuffix(b.Name, "."+name) {
					pick, v = k, bv
				}
			}
		}
	}
	if pick < 0 {
		for k, b := range t.Branches {
			if accepts(b, v) {
				pick = k
				break
			}
		}
	}
	if pick < 0 {
		return fail(path, fmt.Errorf("%w: no union branch accepts the value", ErrType))
	}
	b := t.Branches[pick]
	if b.Kind == engine.KindNull {
		*st.slot(ext, i) = engine.Slot{Null: true, N: uint64(pick)}
		return nil
	}
	st.slot(ext, i).N = uint64(pick)
	return st.value(b, v, i+t.BranchSlot(pick), ext, path)
}

func branchName(t *engine.Type) string {
	if t.Name != "" {
		return t.Name
	}
	return t.Kind.String()
}

func integer(t *engine.Type, v any) (int64, error) {
	switch v := v.(type) {
	case json.Number:
		n, err := strconv.ParseInt(v.String(), 10, 64)
		if err != nil {
			f, ferr := strconv.ParseFloat(v.String(), 64)
			if ferr != nil || f != math.Trunc(f) || math.Abs(f) >= 1<<63 {
				return 0, fmt.Errorf("%w: %s is not an integer", ErrType, v)
			}
			n = int64(f)
		}
		if t.Kind == engine.KindInt && (n < math.MinInt32 || n > math.MaxInt32) {
			return 0, fmt.Errorf("%w: %d out of int range", ErrType, n)
		}
		return n, nil
	case string:
		switch t.Logical {
		case engine.Date:
			d, err := time.Parse("2006-01-02", v)
			if err != nil {
				return 0, fmt.Errorf("%w: %v", ErrType, err)
			}
			return d.Unix() / 86400, nil
		case engine.TimestampMillis, engine.TimestampMicros, engine.LocalTimestampMillis, engine.LocalTimestampMicros:
			ts, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return 0, fmt.Errorf("%w: %v", ErrType, err)
			}
			if t.Logical.MicrosPerUnit() == 1000 {
				return ts.UnixMilli(), nil
			}
			return ts.UnixMicro(), nil
		}
	}
	return 0, ErrType
}

func bytesOf(t *engine.Type, v any) (string, error) {
	if n, ok := v.(json.Number); ok && t.Logical == engine.Decimal {
		r, ok := new(big.Rat).SetString(n.String())
		if !ok {
			return "", ErrType
		}
		r.Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(t.Scale)), nil)))
		if !r.IsInt() {
			return "", fmt.Errorf("%w: %s has more than %d decimals", ErrType, n, t.Scale)
		}
		return twos(r.Num(), t), nil
	}
	s, ok := v.(string)
	if !ok {
		return "", ErrType
	}
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 255 {
			return "", fmt.Errorf("%w: code point %U above 255 in bytes", ErrType, r)
		}
		b = append(b, byte(r))
	}
	return string(b), nil
}

// twos is n as big-endian two's complement, of t.Size bytes for a fixed.
func twos(n *big.Int, t *engine.Type) string {
	size := len(n.Bytes()) + 1
	if t.Kind == engine.KindFixed {
		size = t.Size
	}
	m := new(big.Int).Set(n)
	if m.Sign() < 0 {
		m.Add(m, new(big.Int).Lsh(big.NewInt(1), uint(8*size)))
	}
	b := m.Bytes()
	out := make([]byte, size)
	if len(b) <= size {
		copy(out[size-len(b):], b)
	}
	if n.Sign() < 0 {
		for k := 0; k < size-len(b); k++ {
			out[k] = 0xff
		}
	}
	return string(out)
}
