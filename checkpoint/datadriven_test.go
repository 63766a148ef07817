package checkpoint

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/engine/enginetest"
)

// testCase is one block of a data-driven test file:
//
//	# comments
//	command arg=value ...
//	input lines
//	----
//	expected output lines
//	<blank line>
//
// It is a small cousin of Pebble's datadriven package.
type testCase struct {
	comment []string // lines before the command
	cmd     string
	args    map[string]string
	argLine string
	input   string
	output  string
	line    int // of the command, for messages
}

func (c *testCase) arg(t *testing.T, name string) (string, bool) {
	t.Helper()
	v, ok := c.args[name]
	return v, ok
}

func parseTestFile(t *testing.T, path string) (cases []*testCase, tail []string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	var comment []string
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if l == "" || strings.HasPrefix(l, "#") {
			comment = append(comment, l)
			continue
		}
		c := &testCase{comment: comment, args: map[string]string{}, argLine: l, line: i + 1}
		comment = nil
		fields := strings.Fields(l)
		c.cmd = fields[0]
		for _, f := range fields[1:] {
			k, v, _ := strings.Cut(f, "=")
			c.args[k] = v
		}
		var in []string
		for i++; i < len(lines) && lines[i] != "----"; i++ {
			in = append(in, lines[i])
		}
		if i == len(lines) {
			t.Fatalf("%s:%d: %s: no ---- line", path, c.line, c.cmd)
		}
		var out []string
		for i++; i < len(lines) && lines[i] != ""; i++ {
			out = append(out, lines[i])
		}
		c.input, c.output = strings.Join(in, "\n"), strings.Join(out, "\n")
		cases = append(cases, c)
	}
	return cases, comment
}

// runTestFile runs f on each case of path and compares its output with the
// expected one, or rewrites the file with -update. Output must not contain
// blank lines.
func runTestFile(t *testing.T, path string, f func(t *testing.T, c *testCase) string) {
	cases, tail := parseTestFile(t, path)
	var out strings.Builder
	for _, c := range cases {
		got := strings.TrimRight(f(t, c), "\n")
		if strings.Contains(got, "\n\n") {
			t.Fatalf("%s:%d: output holds a blank line", path, c.line)
		}
		if !enginetest.Update() && got != c.output {
			t.Errorf("%s:%d: %s %s\n--- want\n%s\n--- got\n%s", path, c.line, c.cmd, c.argLine, c.output, got)
		}
		for _, l := range c.comment {
			fmt.Fprintln(&out, l)
		}
		fmt.Fprintln(&out, c.argLine)
		if c.input != "" {
			fmt.Fprintln(&out, c.input)
		}
		fmt.Fprintf(&out, "----\n%s\n\n", got)
	}
	for _, l := range tail {
		fmt.Fprintln(&out, l)
	}
	if enginetest.Update() {
		if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
