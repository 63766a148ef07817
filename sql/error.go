package sql

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Error is a syntax or semantic error in a SQL text, found by Compile. Offset
// is the byte offset of the offending token in the text given to Compile, so
// that the caller can map it to a position in the job file
// (config.Text.At(Offset)); Line and Col (1-based, Col in characters) locate
// it within the SQL text itself.
type Error struct {
	Offset    int
	Line, Col int
	Msg       string
}

func (e *Error) Error() string {
	return fmt.Sprintf("sql %d:%d: %s", e.Line, e.Col, e.Msg)
}

// newError builds an Error at offset in text, clamping the offset into the
// text so that a bad position never hides the message.
func newError(text string, offset int, format string, args ...any) *Error {
	offset = max(0, min(offset, len(text)))
	line := 1 + strings.Count(text[:offset], "\n")
	lineStart := strings.LastIndexByte(text[:offset], '\n') + 1
	col := 1 + utf8.RuneCountInString(text[lineStart:offset])
	return &Error{Offset: offset, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)}
}
