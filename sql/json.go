package sql

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/sluicehq/sluice/engine"
)

// JSON_EXTRACT(doc, path) and doc->path / doc->>path on string columns
// return the JSON text of the value at path (doc->> unquotes it), without
// decoding the document into Go values. Paths are constant: $, .key, ."key",
// [N]. On array and map columns the same syntax indexes the column:
// tags->'$[0]' is the first element, labels->'$.k' (or labels->'$."k"') the
// value under key k; both -> and ->> return the typed element.

type jsonStep struct {
	key   string
	index int // -1 for a key step
}

func parseJSONPath(p string) ([]jsonStep, error) {
	if !strings.HasPrefix(p, "$") {
		return nil, errors.New("a JSON path starts with $")
	}
	var steps []jsonStep
	i := 1
	for i < len(p) {
		switch p[i] {
		case '.':
			i++
			if i < len(p) && p[i] == '"' {
				j := i + 1
				for j < len(p) && p[j] != '"' {
					if p[j] == '\\' {
						j++
					}
					j++
				}
				if j >= len(p) {
					return nil, errors.New("unterminated quoted key")
				}
				k, err := strconv.Unquote(p[i : j+1])
				if err != nil {
					return nil, fmt.Errorf("bad quoted key %s", p[i:j+1])
				}
				steps = append(steps, jsonStep{key: k, index: -1})
				i = j + 1
				continue
			}
			j := i
			for j < len(p) && p[j] != '.' && p[j] != '[' {
				j++
			}
			if j == i || p[i:j] == "*" {
				return nil, errors.New("wildcards and empty keys are not supported")
			}
			steps = append(steps, jsonStep{key: p[i:j], index: -1})
			i = j
		case '[':
			j := strings.IndexByte(p[i:], ']')
			if j < 0 {
				return nil, errors.New("unterminated [")
			}
			n, err := strconv.Atoi(strings.TrimSpace(p[i+1 : i+j]))
			if err != nil || n < 0 {
				return nil, fmt.Errorf("array index %q is not a non-negative integer (last, ranges and wildcards are not supported)", p[i+1:i+j])
			}
			steps = append(steps, jsonStep{index: n})
			i += j + 1
		case ' ':
			i++
		default:
			return nil, fmt.Errorf("unexpected %q", p[i])
		}
	}
	return steps, nil
}

var errBadJSON = errors.New("invalid JSON text")

func jsonValid(s string) bool { return json.Valid(engine.UnsafeBytes(s)) }

func skipWS(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the end of the (valid) JSON value starting at i.
func skipValue(s string, i int) int {
	if i >= len(s) {
		return i
	}
	switch s[i] {
	case '"':
		for j := i + 1; j < len(s); j++ {
			switch s[j] {
			case '\\':
				j++
			case '"':
				return j + 1
			}
		}
		return len(s)
	case '{', '[':
		depth := 0
		for j := i; j < len(s); j++ {
			switch s[j] {
			case '"':
				j = skipValue(s, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(s)
	}
	j := i
	for j < len(s) && !strings.ContainsRune(",}] \t\n\r", rune(s[j])) {
		j++
	}
	return j
}

// jsonLookup finds the raw text of the value at steps in the valid JSON s.
func jsonLookup(s string, steps []jsonStep) (string, bool) {
	i := skipWS(s, 0)
	for _, st := range steps {
		if i >= len(s) {
			return "", false
		}
		if st.index >= 0 {
			if s[i] != '[' {
				return "", false
			}
			i = skipWS(s, i+1)
			for n := 0; ; n++ {
				if i >= len(s) || s[i] == ']' {
					return "", false
				}
				if n == st.index {
					break
				}
				i = skipWS(s, skipValue(s, i))
				if i < len(s) && s[i] == ',' {
					i = skipWS(s, i+1)
				}
			}
			continue
		}
		if s[i] != '{' {
			return "", false
		}
		i = skipWS(s, i+1)
		for {
			if i >= len(s) || s[i] != '"' {
				return "", false
			}
			kend := skipValue(s, i)
			key := s[i+1 : kend-1]
			i = skipWS(s, kend)
			i = skipWS(s, i+1) // ':'
			if key == st.key || (strings.IndexByte(key, '\\') >= 0 && unquoteEq(s[i-1:], key, st.key)) {
				break
			}
			i = skipWS(s, skipValue(s, i))
			if i < len(s) && s[i] == ',' {
				i = skipWS(s, i+1)
			}
		}
	}
	end := skipValue(s, i)
	return s[i:end], true
}

func unquoteEq(_ string, raw, want string) bool {
	k, err := strconv.Unquote(`"` + raw + `"`)
	return err == nil && k == want
}

// appendJSONUnquote appends the value of a JSON string literal.
func appendJSONUnquote(b []byte, s string) ([]byte, bool) {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return b, false
	}
	s = s[1 : len(s)-1]
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch != '\\' || i+1 == len(s) {
			b = append(b, ch)
			continue
		}
		i++
		switch s[i] {
		case 'n':
			b = append(b, '\n')
		case 't':
			b = append(b, '\t')
		case 'r':
			b = append(b, '\r')
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'u':
			if i+4 < len(s) {
				if v, err := strconv.ParseUint(s[i+1:i+5], 16, 32); err == nil {
					b = utf8.AppendRune(b, rune(v))
					i += 4
					continue
				}
			}
			b = append(b, 'u')
		default:
			b = append(b, s[i])
		}
	}
	return b, true
}

func planJSONUnquote(c *compiler, pos int, a []*expr) (*expr, error) {
	e := a[0]
	if e.elem {
		return e, nil
	}
	if e.t == tComposite {
		return nil, c.errorf(e.pos, "JSON_UNQUOTE needs a string, not a record, array or map")
	}
	f := asString(e)
	return c.fold(&expr{t: tString, nullable: e.nullable, konst: e.konst, pos: pos, s: func(in, out *engine.Row) (string, bool, error) {
		s, ok, err := f(in, out)
		if !ok {
			return "", false, err
		}
		if len(s) < 2 || s[0] != '"' {
			return s, true, nil
		}
		if strings.IndexByte(s, '\\') < 0 && s[len(s)-1] == '"' {
			return s[1 : len(s)-1], true, nil
		}
		start := len(out.Arena)
		b, ok := appendJSONUnquote(out.Arena, s)
		if !ok {
			return s, true, nil
		}
		out.Arena = b
		return engine.UnsafeString(out.Arena[start:]), true, nil
	}}), nil
}

func (c *compiler) jsonExtract(pos int, a []*expr, text string) (*expr, error) {
	if len(a) != 2 {
		return nil, c.errorf(pos, "JSON_EXTRACT with several paths is not supported: use one path per call")
	}
	p := a[1]
	if !p.konst || p.t != tString {
		return nil, c.errorf(p.pos, "the JSON path must be a constant string")
	}
	steps, err := parseJSONPath(p.cv.s)
	if err != nil {
		return nil, c.errorf(p.pos, "bad JSON path %q: %v", p.cv.s, err)
	}
	doc := a[0]
	if doc.t == tComposite {
		if len(steps) != 1 {
			return nil, c.errorf(p.pos, "an array or map column is indexed with one step: '$[0]' or '$.key'")
		}
		k := &expr{t: tString, konst: true, s: constFn(steps[0].key, true), cv: value{s: steps[0].key}, pos: p.pos}
		if steps[0].index >= 0 {
			k = &expr{t: tInt, konst: true, i: constFn(int64(steps[0].index), true), cv: value{i: int64(steps[0].index)}, pos: p.pos}
		}
		e, err := c.element(pos, doc, k, 0, text)
		if err != nil {
			return nil, err
		}
		e.elem = true
		return e, nil
	}
	f := asString(doc)
	return c.fold(&expr{t: tString, nullable: true, konst: doc.konst, pos: pos, text: text, s: func(in, out *engine.Row) (string, bool, error) {
		s, ok, err := f(in, out)
		if !ok {
			return "", false, err
		}
		if !json.Valid(engine.UnsafeBytes(s)) {
			return "", false, evalErr(text, errBadJSON)
		}
		v, ok := jsonLookup(s, steps)
		return v, ok, nil
	}}), nil
}

func planElementAt(c *compiler, pos int, a []*expr) (*expr, error) {
	return c.element(pos, a[0], a[1], 1, "")
}

// element reads an array element (index counted from base) or a map value.
func (c *compiler) element(pos int, coll, key *expr, base int64, text string) (*expr, error) {
	if coll.col == nil || (coll.col.inner.Kind != engine.KindArray && coll.col.inner.Kind != engine.KindMap) {
		return nil, c.errorf(coll.pos, "%s is not an array or map column", coll.text)
	}
	ref := coll.col
	items := ref.inner.Items
	itemType, itemNull := items, false
	if inner, ok := items.Nullable(); ok {
		itemType, itemNull = inner, true
	}
	if st, _ := sqlType(itemType); st == tComposite {
		return nil, c.errorf(coll.pos, "elements of %s are records, arrays or maps, which cannot be indexed yet", coll.text)
	}
	w := items.Width()
	_, _, get := slotExpr(ref.inner, ref.slot, ref.parents, ref.nullable)
	var find func(in, out *engine.Row) (*engine.Slot, bool, error)
	if ref.inner.Kind == engine.KindArray {
		if !key.t.numeric() && key.t != tNull {
			return nil, c.errorf(key.pos, "an array index must be a number, not %s", key.t)
		}
		idx := asInt(key)
		find = func(in, out *engine.Row) (*engine.Slot, bool, error) {
			s, ok := get(in)
			if !ok {
				return nil, false, nil
			}
			i, ok, err := idx(in, out)
			if !ok {
				return nil, false, err
			}
			i -= base
			if i < 0 || i >= int64(s.L) {
				return nil, false, nil
			}
			e := int(s.N) + int(i)*w
			if e >= len(in.Ext) {
				return nil, false, nil
			}
			el := &in.Ext[e]
			return el, !el.Null, nil
		}
	} else {
		if key.t == tComposite {
			return nil, c.errorf(key.pos, "a map key must be a string")
		}
		kf := asString(key)
		find = func(in, out *engine.Row) (*engine.Slot, bool, error) {
			s, ok := get(in)
			if !ok {
				return nil, false, nil
			}
			k, ok, err := kf(in, out)
			if !ok {
				return nil, false, err
			}
			for j, e := 0, int(s.N); j < int(s.L) && e+1 < len(in.Ext); j, e = j+1, e+1+w {
				if in.Ext[e].S == k {
					el := &in.Ext[e+1]
					return el, !el.Null, nil
				}
			}
			return nil, false, nil
		}
	}
	_ = itemNull
	r := readSlot(itemType, find, true, text)
	r.pos = pos
	r.konst = false
	return r, nil
}
