package sql

import (
	"strings"

	"vitess.io/vitess/go/vt/sqlparser"
)

// The vitess AST carries no positions. The planner recovers them from the
// token stream: it visits the AST in source order (left operand, operator,
// right operand; function name, then arguments) and, for each leaf or keyword
// it meets, takes the next token that spells it. A token the planner cannot
// match leaves the cursor where it is, so that a later error still points at
// a nearby token rather than at the start of the text.

type token struct {
	typ int
	val string
	pos int // byte offset of the token's first character
	end int // byte offset just past the token
}

// commentToken is the type vitess gives to comments it returns as tokens.
const commentToken = sqlparser.COMMENT

type locator struct {
	text string
	toks []token
	cur  int
}

func newLocator(p *sqlparser.Parser, text string) *locator {
	l := &locator{text: text}
	tz := p.NewStringTokenizer(text)
	for range len(text) + 1 { // each token consumes at least one byte
		start := tz.Pos
		typ, val := tz.Scan()
		if typ == 0 || tz.LastError != nil || tz.Pos <= start {
			break
		}
		if typ == commentToken {
			continue
		}
		pos := skipBlank(text, start, tz.Pos)
		if val == "" {
			// Operators and punctuation come with no value: spell them
			// as written, or every search for one ("+") would scan to
			// the end of the text, which made compiling a long
			// expression quadratic.
			val = text[pos:tz.Pos]
		}
		l.toks = append(l.toks, token{typ: typ, val: val, pos: pos, end: tz.Pos})
	}
	return l
}

// skipBlank returns the offset of the first character at or after i that is
// not white space or part of a comment, but not beyond end.
func skipBlank(text string, i, end int) int {
	for i < end {
		switch {
		case text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r':
			i++
		case strings.HasPrefix(text[i:], "/*") && !strings.HasPrefix(text[i:], "/*!"):
			j := strings.Index(text[i+2:], "*/")
			if j < 0 {
				return i
			}
			i += j + 4
		case strings.HasPrefix(text[i:], "-- ") || text[i] == '#':
			j := strings.IndexByte(text[i:], '\n')
			if j < 0 {
				return i
			}
			i += j + 1
		default:
			return i
		}
	}
	return min(i, end)
}

// here is the offset of the token at the cursor (end of text when none).
func (l *locator) here() int {
	if l.cur < len(l.toks) {
		return l.toks[l.cur].pos
	}
	return len(l.text)
}

// find moves the cursor past the next token spelled val (case-insensitive)
// and returns its offset; when there is none it returns here() and leaves the
// cursor alone.
func (l *locator) find(val string) int {
	for i := l.cur; i < len(l.toks); i++ {
		if strings.EqualFold(l.toks[i].val, val) {
			l.cur = i + 1
			return l.toks[i].pos
		}
	}
	return l.here()
}

// findFrom is find for a keyword that may be written several ways.
func (l *locator) findAny(vals ...string) int {
	best := -1
	for i := l.cur; i < len(l.toks) && best < 0; i++ {
		for _, v := range vals {
			if strings.EqualFold(l.toks[i].val, v) {
				best = i
				break
			}
		}
	}
	if best < 0 {
		return l.here()
	}
	l.cur = best + 1
	return l.toks[best].pos
}

// syntaxOffset converts the position vitess reports in a syntax error (one
// past the end of the offending token, 1-based) to the offset of the
// offending token's first character.
func (l *locator) syntaxOffset(pos int) int {
	end := pos - 1
	off := end
	for _, t := range l.toks {
		if t.end <= end {
			off = t.pos
		} else {
			break
		}
	}
	if end >= len(l.text) {
		// Unexpected end of text: point at the end.
		return len(l.text)
	}
	return off
}
