package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Error is one problem in a job file, at a position.
type Error struct {
	File      string
	Line, Col int
	Msg       string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// Errors is every problem found in a job file, in file order. Loading reports
// all of them at once rather than stopping at the first.
type Errors []*Error

func (es Errors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

func (es Errors) sorted() Errors {
	slices.SortStableFunc(es, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
	return es
}

// Pos is a position in a job file. A struct field of type Pos named Pos is set
// by the decoder to the position of the mapping the struct was decoded from,
// so that Validate can report where a problem is.
type Pos struct {
	File      string
	Line, Col int
	keys      map[string][2]int // key → line, col of its value
}

// Key returns the position of the value of key in the mapping, or the
// mapping's own position when the key is absent.
func (p Pos) Key(key string) Pos {
	if lc, ok := p.keys[key]; ok {
		return Pos{File: p.File, Line: lc[0], Col: lc[1]}
	}
	return Pos{File: p.File, Line: p.Line, Col: p.Col}
}

// has reports whether the mapping has key: an explicit zero is not a
// default.
func (p Pos) has(key string) bool {
	_, ok := p.keys[key]
	return ok
}

// Errorf makes an Error at p.
func (p Pos) Errorf(format string, args ...any) *Error {
	return &Error{File: p.File, Line: p.Line, Col: p.Col, Msg: fmt.Sprintf(format, args...)}
}
