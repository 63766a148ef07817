// Package enginetest holds the plumbing that sluice's tests share: golden
// files that only -update rewrites, free loopback ports for the real parts
// (kfake, rsyslog, kube-apiserver) a test starts on its own, headless
// Chromium for the tests that load status pages, and the process's CPU
// time for benchmarks that report cpu-ns/record.
//
// It is imported only by _test.go files. Importing it defines the -update
// flag of the test binary, so a package that imports it must not define its
// own.
package enginetest

import (
	"flag"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files instead of comparing with them")

// Update reports whether the test binary runs with -update: golden files
// and generated documents are rewritten instead of compared.
func Update() bool { return *update }

// Golden compares got with the file at path. With -update it writes got
// there (creating its directory) instead. A missing or stale file fails the
// test with the difference (-want +got) and the command that rewrites it.
func Golden(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden file: %v (create it with go test -run '%s' -update)", err, t.Name())
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s is stale (-want +got):\n%s\nrewrite it with go test -run '%s' -update", path, diff, t.Name())
	}
}

// FreePort returns a loopback TCP port that was free a moment ago, for a
// part that must be told its port before it listens. Another process may
// take it in between; prefer listening on port 0 where the part allows.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
