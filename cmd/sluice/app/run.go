package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/config"
)

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: sluice run JOB.yaml")
		return 2
	}
	cj, err := config.Load(args[0], nil)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	log := newLogger(stderr)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	var health healthRelay
	built, err := Build(ctx, cj, Options{Pod: podName(), Logger: log, Registry: reg, OnHealth: health.report})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	rt, err := engine.New(built.Job)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	health.set(rt)
	if cj.Metrics.Listen != "off" {
		stopHTTP, err := serve(cj.Metrics.Listen, reg, rt)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		defer stopHTTP()
	}
	stopSignals := abortOnSecondSignal(rt, log)
	defer stopSignals()
	if err := rt.Run(ctx); err != nil {
		log.Error("job failed", "error", err)
		return 1
	}
	return 0
}

// abortOnSecondSignal makes the first SIGTERM or SIGINT drain the job (ctx,
// from main, ends too) and a second one abort it at once: an operator who
// does not want to wait for the drain deadline need not reach for SIGKILL,
// and what is not committed is replayed by the next owner.
func abortOnSecondSignal(rt *engine.Runtime, log *slog.Logger) (stop func()) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	done := make(chan struct{})
	go func() {
		n := 0
		for {
			select {
			case sig := <-sigs:
				n++
				if n == 1 {
					rt.Drain()
					continue
				}
				log.Warn("second signal: stopping at once; uncommitted records are replayed by the next owner", "signal", sig.String())
				rt.Abort()
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(done)
	}
}

// serve starts the HTTP endpoint: /metrics, /healthz, /readyz, POST /drain and
// a plain-text status page at /.
func serve(addr string, reg *prometheus.Registry, rt *engine.Runtime) (func(), error) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ok, why := rt.Ready(); !ok {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	mux.HandleFunc("POST /drain", func(w http.ResponseWriter, _ *http.Request) {
		rt.Drain()
		io.WriteString(w, "draining\n")
	})
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, _ *http.Request) {
		writeStatus(w, rt.Stats())
		if ok, why := rt.Ready(); !ok {
			fmt.Fprintf(w, "not ready: %s\n", why)
		} else {
			io.WriteString(w, "ready\n")
		}
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "metrics server:", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}

func writeStatus(w io.Writer, s *engine.Stats) {
	last := "never"
	if us := s.LastCheckpointUnixMicro.Load(); us > 0 {
		last = time.Since(time.UnixMicro(us)).Truncate(time.Millisecond).String() + " ago"
	}
	fmt.Fprintf(w, "tasks %d  records in %d  out %d  in flight %d  dead letters %d  checkpoints %d (last %s, %d bytes)\n",
		s.Tasks.Load(), s.RecordsIn.Load(), s.RecordsOut.Load(), s.InFlight.Load(), s.DeadLetters.Load(),
		s.Checkpoints.Load(), last, s.LastCheckpointBytes.Load())
}

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: sluice validate JOB.yaml...")
		return 2
	}
	code := 0
	for _, path := range args {
		cj, err := config.Load(path, nil)
		if err == nil {
			_, err = Build(context.Background(), cj, Options{DryRun: true})
		} else if cj != nil {
			// Report the component errors too: every mistake at once.
			if _, berr := Build(context.Background(), cj, Options{DryRun: true}); berr != nil {
				err = config.Merge(err, berr)
			}
		}
		if err != nil {
			fmt.Fprintln(stderr, err)
			code = 1
			continue
		}
		fmt.Fprintf(stdout, "%s: ok\n", path)
	}
	return code
}

// healthRelay passes the source's problems to the runtime's readiness: the
// source is built before the runtime that owns /readyz.
type healthRelay struct {
	rt atomic.Pointer[engine.Runtime]
}

func (h *healthRelay) set(rt *engine.Runtime) { h.rt.Store(rt) }

func (h *healthRelay) report(reason string) {
	if rt := h.rt.Load(); rt != nil {
		rt.SetUnready(reason)
	}
}
