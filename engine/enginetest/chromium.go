package enginetest

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Chromium runs Debian's headless Chromium with args (e.g. --dump-dom URL
// or --screenshot=FILE URL), within a minute, and returns its standard
// output. A missing chromium fails the test with the command that installs
// it.
func Chromium(t testing.TB, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium not found: install it with `apt-get update && apt-get install -y chromium`")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir(), "--virtual-time-budget=2000"}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}
