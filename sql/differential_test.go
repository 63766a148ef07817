package sql

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	_ "modernc.org/sqlite"

	"github.com/sluicehq/sluice/engine"
)

// exprGen writes random expressions over the subset where MySQL's and
// SQLite's semantics agree: integer and binary string comparisons, boolean
// logic with NULLs, CASE, COALESCE, IN, BETWEEN, + - * on small integers,
// LOWER, UPPER, LENGTH and SUBSTR on ASCII strings.
type exprGen struct {
	rng *rand.Rand
}

func (g *exprGen) pick(s ...string) string { return s[g.rng.IntN(len(s))] }

func (g *exprGen) intLeaf() string {
	switch g.rng.IntN(4) {
	case 0:
		return fmt.Sprint(g.rng.IntN(21) - 10)
	case 1:
		return "NULL"
	}
	return g.pick("i1", "i2", "i3")
}

func (g *exprGen) strLeaf() string {
	if g.rng.IntN(3) == 0 {
		return g.pick("'a'", "'B'", "''", "'abc'", "'Ab'", "NULL")
	}
	return g.pick("s1", "s2")
}

func (g *exprGen) intExpr(d int) string {
	if d <= 0 {
		return g.intLeaf()
	}
	switch g.rng.IntN(8) {
	case 0:
		return fmt.Sprintf("(%s %s %s)", g.intExpr(d-1), g.pick("+", "-"), g.intExpr(d-1))
	case 1:
		return fmt.Sprintf("(%s * %s)", g.intLeaf(), g.intLeaf())
	case 2:
		return fmt.Sprintf("CASE WHEN %s THEN %s WHEN %s THEN %s ELSE %s END", g.boolExpr(d-1), g.intExpr(d-1), g.boolExpr(d-1), g.intExpr(d-1), g.intExpr(d-1))
	case 3:
		return fmt.Sprintf("CASE %s WHEN %s THEN %s ELSE %s END", g.intExpr(d-1), g.intLeaf(), g.intExpr(d-1), g.intExpr(d-1))
	case 4:
		return fmt.Sprintf("COALESCE(%s, %s, %s)", g.intExpr(d-1), g.intExpr(d-1), g.intLeaf())
	case 5:
		return fmt.Sprintf("LENGTH(%s)", g.strExpr(d-1))
	case 6:
		return fmt.Sprintf("(-(%s))", g.intExpr(d-1))
	}
	return g.intLeaf()
}

func (g *exprGen) strExpr(d int) string {
	if d <= 0 {
		return g.strLeaf()
	}
	switch g.rng.IntN(6) {
	case 0:
		return fmt.Sprintf("LOWER(%s)", g.strExpr(d-1))
	case 1:
		return fmt.Sprintf("UPPER(%s)", g.strExpr(d-1))
	case 2:
		return fmt.Sprintf("SUBSTR(%s, %d, %d)", g.strExpr(d-1), 1+g.rng.IntN(4), g.rng.IntN(4))
	case 3:
		return fmt.Sprintf("CASE WHEN %s THEN %s ELSE %s END", g.boolExpr(d-1), g.strExpr(d-1), g.strExpr(d-1))
	case 4:
		return fmt.Sprintf("COALESCE(%s, %s)", g.strExpr(d-1), g.strExpr(d-1))
	}
	return g.strLeaf()
}

func (g *exprGen) boolExpr(d int) string {
	if d <= 0 {
		return fmt.Sprintf("%s %s %s", g.intLeaf(), g.pick("=", "<>", "<", "<=", ">", ">="), g.intLeaf())
	}
	switch g.rng.IntN(10) {
	case 0:
		return fmt.Sprintf("(%s AND %s)", g.boolExpr(d-1), g.boolExpr(d-1))
	case 1:
		return fmt.Sprintf("(%s OR %s)", g.boolExpr(d-1), g.boolExpr(d-1))
	case 2:
		return fmt.Sprintf("(NOT %s)", g.boolExpr(d-1))
	case 3:
		return fmt.Sprintf("(%s IS %sNULL)", g.pick(g.intExpr(d-1), g.strExpr(d-1)), g.pick("", "NOT "))
	case 4:
		return fmt.Sprintf("(%s %sIN (%s, %s, %s))", g.intExpr(d-1), g.pick("", "NOT "), g.intLeaf(), g.intLeaf(), g.intLeaf())
	case 5:
		return fmt.Sprintf("(%s %sIN (%s, %s))", g.strExpr(d-1), g.pick("", "NOT "), g.strLeaf(), g.strLeaf())
	case 6:
		return fmt.Sprintf("(%s %sBETWEEN %s AND %s)", g.intExpr(d-1), g.pick("", "NOT "), g.intLeaf(), g.intLeaf())
	case 7:
		return fmt.Sprintf("(%s %s %s)", g.strExpr(d-1), g.pick("=", "<>", "<", ">="), g.strExpr(d-1))
	case 8:
		return fmt.Sprintf("(%s %s %s)", g.intExpr(d-1), g.pick("=", "<>", "<", ">="), g.intExpr(d-1))
	}
	return g.boolExpr(0)
}

func TestSQLDifferentialSQLite(t *testing.T) {
	nullable := func(k engine.Kind) *engine.Type {
		return &engine.Type{Kind: engine.KindUnion, EnumDefault: -1, Branches: []*engine.Type{{Kind: engine.KindNull}, {Kind: k}}}
	}
	root := &engine.Type{Kind: engine.KindRecord, Name: "T", EnumDefault: -1, Fields: []engine.Field{
		{Name: "i1", Type: nullable(engine.KindLong)},
		{Name: "i2", Type: nullable(engine.KindLong)},
		{Name: "i3", Type: &engine.Type{Kind: engine.KindInt}},
		{Name: "s1", Type: nullable(engine.KindString)},
		{Name: "s2", Type: &engine.Type{Kind: engine.KindString}},
	}}
	schema := engine.MustSchema(root)

	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("CREATE TABLE input (id INTEGER PRIMARY KEY, i1 INTEGER, i2 INTEGER, i3 INTEGER NOT NULL, s1 TEXT, s2 TEXT NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(42, 42))
	words := []string{"", "a", "A", "ab", "abc", "B", "Abc", "zz", "hello"}
	const nRows = 64
	rows := make([]*engine.Row, nRows)
	for i := range rows {
		r := engine.NewRow(schema.Width())
		vals := []any{i}
		for j, f := range root.Fields {
			if _, isNull := f.Type.Nullable(); isNull && rng.IntN(4) == 0 {
				r.SetNull(j)
				vals = append(vals, nil)
				continue
			}
			if j < 3 {
				v := int64(rng.IntN(21) - 10)
				r.SetInt(j, v)
				vals = append(vals, v)
			} else {
				s := words[rng.IntN(len(words))]
				r.SetStr(j, s)
				vals = append(vals, s)
			}
		}
		rows[i] = r
		if _, err := db.Exec("INSERT INTO input VALUES (?, ?, ?, ?, ?, ?)", vals...); err != nil {
			t.Fatal(err)
		}
	}

	g := &exprGen{rng: rand.New(rand.NewPCG(7, 7))}
	n := 3000
	if testing.Short() {
		n = 300
	}
	out := &engine.Row{}
	for k := 0; k < n; k++ {
		var e string
		switch k % 3 {
		case 0:
			e = g.boolExpr(3)
		case 1:
			e = g.intExpr(3)
		default:
			e = g.strExpr(3)
		}
		q := "SELECT " + e + " AS v FROM input"
		p, err := Compile(q, schema)
		if err != nil {
			t.Fatalf("Compile(%s): %v", q, err)
		}
		res, err := db.Query(q + " ORDER BY id")
		if err != nil {
			t.Fatalf("sqlite %s: %v", q, err)
		}
		var want []any
		for res.Next() {
			var v any
			if err := res.Scan(&v); err != nil {
				t.Fatal(err)
			}
			if b, ok := v.([]byte); ok {
				v = string(b)
			}
			want = append(want, v)
		}
		res.Close()
		var got []any
		col := p.Output().Fields()[0]
		for _, r := range rows {
			if _, err := p.Eval(r, out); err != nil {
				t.Fatalf("Eval(%s): %v", q, err)
			}
			got = append(got, sqlValue(col.Type, out.Slots[0]))
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("%s: sqlite and sluice disagree (-sqlite +sluice):\n%s", q, diff)
		}
	}
}

// sqlValue reads a slot as database/sql reports SQLite values.
func sqlValue(t *engine.Type, s engine.Slot) any {
	if inner, ok := t.Nullable(); ok {
		t = inner
	}
	if s.Null || t.Kind == engine.KindNull {
		return nil
	}
	switch t.Kind {
	case engine.KindBool:
		return int64(s.N)
	case engine.KindInt, engine.KindLong:
		return int64(s.N)
	case engine.KindString:
		return strings.Clone(s.S) // s.S may alias the output row's arena
	}
	return fmt.Sprintf("<%s>", strings.ToLower(t.Kind.String()))
}
