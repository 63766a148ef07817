package kafka

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine"
)

// TestBadInputIsReported: a missing topic and unreachable brokers make the
// runtime unready with the reason, the source keeps retrying instead of
// failing the job, and a topic created later is consumed.
func TestBadInputIsReported(t *testing.T) {
	t.Run("missing topic", func(t *testing.T) {
		c, adm := cluster(t, map[string]int32{"present": 1})
		got := make(chan struct{}, 1)
		sink := &testSink{onFlush: func(engine.TaskID, []string) {
			select {
			case got <- struct{}{}:
			default:
			}
		}}
		var rt *engine.Runtime
		m := startMember(t, c, "health-job", memberOpts{pod: "pod-0", topics: []string{"absent"},
			pipes: []*engine.Pipeline{pipeline("p", "absent", sink, 100)},
			cfg: func(c *Config) {
				c.OnHealth = func(reason string) { rt.SetUnready(reason) }
			}, rtHook: func(r *engine.Runtime) { rt = r }})
		waitFor(t, 20*time.Second, "readiness to report the missing topic", func() bool {
			ok, reason := m.rt.Ready()
			return !ok && strings.Contains(reason, `topic "absent" does not exist`)
		})
		if _, err := adm.CreateTopic(context.Background(), 1, 1, nil, "absent"); err != nil {
			t.Fatal(err)
		}
		produce(t, producer(t, c), "absent", 0, 1, func(int) []byte { return []byte("x") })
		waitFor(t, 30*time.Second, "readiness to recover", func() bool { ok, _ := m.rt.Ready(); return ok })
		select {
		case <-got:
		case <-time.After(30 * time.Second):
			t.Fatal("the topic created later was not consumed")
		}
	})
	t.Run("unreachable brokers", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close() // nothing listens there now
		reasons := make(chan string, 16)
		src, err := New(Config{Brokers: []string{addr}, Group: "g", Topics: []string{"t"},
			WatchInterval: 100 * time.Millisecond,
			OnHealth: func(r string) {
				select {
				case reasons <- r:
				default:
				}
			}})
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- src.Run(ctx, nopHandler{}) }()
		select {
		case r := <-reasons:
			if !strings.Contains(r, "unreachable") || !strings.Contains(r, addr) {
				t.Errorf("reason %q, want it to say the brokers at %s are unreachable", r, addr)
			}
			t.Logf("reported: %s", r)
		case err := <-done:
			t.Fatalf("Run returned %v; want it to keep retrying", err)
		case <-time.After(30 * time.Second):
			t.Fatal("no health report for unreachable brokers")
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run after cancel: %v", err)
		}
	})
}

type nopHandler struct{}

func (nopHandler) Assign(context.Context, []engine.Assignment) {}
func (nopHandler) Revoke(context.Context, []engine.TaskID)     {}
func (nopHandler) Deliver(engine.TaskID, []engine.Record)      {}
func (nopHandler) End(engine.TaskID)                           {}
