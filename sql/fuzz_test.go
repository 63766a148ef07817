package sql

import (
	"errors"
	"testing"

	"github.com/sluicehq/sluice/engine"
)

// FuzzSQL compiles arbitrary text against the traffic schema and evaluates
// what compiles on generated rows: nothing may panic, every compile error is
// a *Error inside the text, and every evaluation error an *engine.EvalError.
// Seeds: every golden and error case, and testdata/fuzz/FuzzSQL.
func FuzzSQL(f *testing.F) {
	for _, cases := range evalCases {
		for _, q := range cases {
			f.Add(q)
		}
	}
	f.Add("SELECT src_ip FROM input WHERE CIDR_MATCH(src_ip, '10.0.0.0/8') AND app REGEXP '^s'")
	f.Add("SELECT ELEMENT_AT(tags, 0), labels->'$.\"x\"' FROM input")
	schema := loadSchema(f, "testdata/schemas/traffic.avsc")
	g := newGen(3)
	rows := []*engine.Row{g.row(schema), g.row(schema), g.row(schema)}
	f.Fuzz(func(t *testing.T, text string) {
		p, err := Compile(text, schema)
		if err != nil {
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("Compile(%q): %v is not a *sql.Error", text, err)
			}
			if se.Offset < 0 || se.Offset > len(text) || se.Line < 1 || se.Col < 1 {
				t.Fatalf("Compile(%q): position %d (%d:%d) outside the text", text, se.Offset, se.Line, se.Col)
			}
			return
		}
		out := &engine.Row{}
		for _, r := range rows {
			if _, err := p.Eval(r, out); err != nil {
				var ee *engine.EvalError
				if !errors.As(err, &ee) {
					t.Fatalf("Eval(%q): %v does not wrap *engine.EvalError", text, err)
				}
			}
		}
	})
}
