package syslog

import (
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/engine"
)

// part is a literal or a column of a compiled template.
type part struct {
	lit     string
	col     bool
	slot    int
	parents []int
	t       *engine.Type
}

// template is a message template compiled against a schema, once.
type template []part

// compileTemplate parses s: {path} is a column, {{ and }} are braces.
func compileTemplate(s string, schema *engine.Schema) (template, error) {
	var t template
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t = append(t, part{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '{' && i+1 < len(s) && s[i+1] == '{', c == '}' && i+1 < len(s) && s[i+1] == '}':
			lit.WriteByte(c)
			i++
		case c == '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return nil, fmt.Errorf("template %q: { at %d is never closed", s, i)
			}
			path := strings.TrimSpace(s[i+1 : i+end])
			col, ok := schema.Lookup(path)
			if !ok {
				return nil, fmt.Errorf("template %q: unknown column %q", s, path)
			}
			vt := col.Type
			if inner, ok := vt.Nullable(); ok {
				vt = inner
			}
			switch vt.Kind {
			case engine.KindRecord, engine.KindArray, engine.KindMap, engine.KindUnion:
				return nil, fmt.Errorf("template %q: column %q is a %s; only scalar columns can be placed in a message", s, path, vt.Kind)
			}
			flush()
			t = append(t, part{col: true, slot: col.Slot, parents: col.Parents, t: vt})
			i += end
		case c == '}':
			return nil, fmt.Errorf("template %q: } at %d without {", s, i)
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return t, nil
}

// appendTo appends the template's text for row. A null value is "-".
func (t template) appendTo(b []byte, row *engine.Row) []byte {
	for i := range t {
		p := &t[i]
		if !p.col {
			b = append(b, p.lit...)
			continue
		}
		b = appendValue(b, p, row)
	}
	return b
}

func appendValue(b []byte, p *part, row *engine.Row) []byte {
	for _, ps := range p.parents {
		if row.Slots[ps].Null {
			return append(b, '-')
		}
	}
	s := &row.Slots[p.slot]
	if s.Null {
		return append(b, '-')
	}
	switch p.t.Kind {
	case engine.KindBool:
		return strconv.AppendBool(b, s.N != 0)
	case engine.KindInt, engine.KindLong:
		v := int64(s.N)
		switch {
		case p.t.Logical.IsTimestamp():
			return time.UnixMicro(v*p.t.Logical.MicrosPerUnit()).UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00")
		case p.t.Logical == engine.Date:
			return time.Unix(v*86400, 0).UTC().AppendFormat(b, "2006-01-02")
		}
		return strconv.AppendInt(b, v, 10)
	case engine.KindFloat, engine.KindDouble:
		f := math.Float64frombits(s.N)
		return strconv.AppendFloat(b, f, 'g', -1, 64)
	case engine.KindEnum, engine.KindString:
		return append(b, s.S...)
	case engine.KindBytes, engine.KindFixed:
		return hex.AppendEncode(b, engine.UnsafeBytes(s.S))
	}
	return b
}

// timestampOf returns the time in the timestamp column c of row, ok false
// when it is null.
func timestampOf(c *engine.Column, row *engine.Row) (time.Time, bool) {
	for _, ps := range c.Parents {
		if row.Slots[ps].Null {
			return time.Time{}, false
		}
	}
	s := &row.Slots[c.Slot]
	if s.Null {
		return time.Time{}, false
	}
	t := c.Type
	if inner, ok := t.Nullable(); ok {
		t = inner
	}
	return time.UnixMicro(int64(s.N) * t.Logical.MicrosPerUnit()), true
}
