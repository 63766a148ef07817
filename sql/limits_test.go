package sql

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestCompileIsLinear: a chain of 10,000 '+' terms compiles in well under a
// second (it took 14 s when every operator search scanned to the end of the
// text and every node formatted its whole subtree), and doubling the terms
// roughly doubles the time; statements past the limits are errors that say so.
func TestCompileIsLinear(t *testing.T) {
	schema := trafficSchema(t)
	compile := func(terms int) time.Duration {
		t.Helper()
		parts := make([]string, terms)
		for i := range parts {
			parts[i] = "bytes_sent"
		}
		start := time.Now()
		if _, err := Compile("SELECT "+strings.Join(parts, " + ")+" AS b FROM input WHERE "+strings.Repeat("app <> 'x' AND ", terms/10)+"TRUE", schema); err != nil {
			t.Fatalf("%d terms: %v", terms, err)
		}
		return time.Since(start)
	}
	// Linear, measured as a ratio so that a loaded machine slows both
	// sizes alike: ten times the terms costs about ten times the time; a
	// quadratic pass would make it a hundred. The best of three runs of
	// each size drops a run that a neighbour's burst slowed down.
	best := func(terms int) time.Duration {
		d := compile(terms)
		for range 2 {
			d = min(d, compile(terms))
		}
		return d
	}
	compile(100) // warm up
	d1k, d10k := best(1_000), best(10_000)
	if ratio := float64(d10k) / float64(d1k); ratio > 40 {
		t.Errorf("10,000 terms took %.0fx as long as 1,000 (%s vs %s): compilation is not linear", ratio, d10k, d1k)
	}
	t.Logf("1,000 terms: %s; 10,000 terms: %s", d1k, d10k)

	var se *Error
	_, err := Compile("SELECT "+strings.Repeat("1 + ", MaxTokens/2)+"1 AS b FROM input", schema)
	if !errors.As(err, &se) || !strings.Contains(se.Msg, "tokens, over the limit") {
		t.Errorf("a statement of %d tokens: %v, want the token limit", MaxTokens+2, err)
	}
	_, err = Compile("SELECT '"+strings.Repeat("x", MaxTextBytes)+"' AS b FROM input", schema)
	if !errors.As(err, &se) || !strings.Contains(se.Msg, "over the limit") {
		t.Errorf("a statement over %d bytes: %v, want the size limit", MaxTextBytes, err)
	}
}
