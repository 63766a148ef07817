package kafka

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestFencedMemberReportedOnce: a second member joins with the static
// instance id of a running one, which is fenced out of the group. The fenced
// member reports it through OnHealth (what readiness shows) and logs it once,
// instead of "partitions lost map[]" at every rejoin attempt.
func TestFencedMemberReportedOnce(t *testing.T) {
	c, _ := cluster(t, map[string]int32{"fence": 2})
	var logs lockedBuffer
	var reason atomic.Value
	reason.Store("")
	start := func(log *slog.Logger, onHealth func(string)) (*Source, func()) {
		src, err := New(Config{Brokers: c.ListenAddrs(), Group: "fence-job", InstanceID: "pod-0", Topics: []string{"fence"},
			Logger: log, OnHealth: onHealth, WatchInterval: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); src.Run(ctx, nopHandler{}) }()
		return src, func() { cancel(); <-done; src.Close() }
	}
	first, stopFirst := start(slog.New(slog.NewTextHandler(&logs, nil)), func(r string) { reason.Store(r) })
	defer stopFirst()
	waitFor(t, time.Minute, "the first member to own the tasks", func() bool {
		first.mu.Lock()
		defer first.mu.Unlock()
		return len(first.owned) == 2
	})
	_, stopSecond := start(nil, nil)
	defer stopSecond()
	waitFor(t, time.Minute, "the fenced member to report it", func() bool {
		return strings.Contains(reason.Load().(string), "fenced out of group fence-job")
	})
	time.Sleep(5 * time.Second) // several rejoin attempts
	out := logs.String()
	if n := strings.Count(out, "partitions lost"); n > 1 {
		t.Errorf("%q logged %d times, want at most once:\n%s", "partitions lost", n, out)
	}
	if strings.Contains(out, "map[]") {
		t.Errorf("an empty loss was logged:\n%s", out)
	}
	if n := strings.Count(out, "fenced out of group"); n != 1 {
		t.Errorf("the fence was logged %d times, want once:\n%s", n, out)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
