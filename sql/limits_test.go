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
	compile(100) // warm up
	d10k := compile(10_000)
	if d10k > 2*time.Second { // generous: a shared 2-core machine
		t.Errorf("10,000 terms compiled in %s, want well under a second", d10k)
	}
	t.Logf("10,000 terms: %s", d10k)

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
