package app

import (
	"bytes"
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
	redact := cj.Redactor()
	log := newLogger(stderr, redact)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	// The process's CPU carries the job, so that throughput per vCPU is one
	// query across the fleet.
	prometheus.WrapRegistererWith(prometheus.Labels{"job": cj.Job}, reg).MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
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
	reg.MustRegister(rt.Collector(cj.Metrics.PerPartition))
	stopHTTP, err := serve(endpoints{public: cj.Metrics.Listen, admin: cj.Metrics.AdminListen, perPartition: cj.Metrics.PerPartition}, reg, rt, redact)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer stopHTTP()
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

// endpoints are the addresses of a worker's HTTP servers; "off" disables one.
type endpoints struct {
	// public serves /metrics, /healthz, /readyz and the status page at /:
	// what a scraper or a kubelet reads, nothing that changes state.
	public string
	// admin serves POST /drain. It defaults to loopback, so that whoever
	// reaches a pod's public port cannot stop it.
	admin string
	// perPartition exports every series (metrics.per_partition).
	perPartition bool
}

// serve starts the worker's HTTP servers. Everything they answer passes
// through redact: a readiness reason or a metric label may quote an error.
func serve(at endpoints, reg *prometheus.Registry, rt *engine.Runtime, redact func(string) string) (func(), error) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", redactBody(promhttp.HandlerFor(engine.Exported(reg, at.perPartition), promhttp.HandlerOpts{Registry: reg, DisableCompression: true}), redact))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ok, why := rt.Ready(); !ok {
			http.Error(w, "not ready: "+redact(why), http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	mux.Handle("/{$}", redactBody(statusHandler(rt), redact))
	admin := http.NewServeMux()
	admin.HandleFunc("POST /drain", func(w http.ResponseWriter, _ *http.Request) {
		rt.Drain()
		io.WriteString(w, "draining\n")
	})
	var servers []*http.Server
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		for _, srv := range servers {
			srv.Shutdown(ctx)
		}
	}
	for _, e := range []struct {
		what, addr string
		h          http.Handler
	}{{"metrics listen", at.public, mux}, {"metrics admin_listen", at.admin, admin}} {
		if e.addr == "off" || e.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", e.addr)
		if err != nil {
			stop()
			return nil, fmt.Errorf("%s %s: %w", e.what, e.addr, err)
		}
		srv := &http.Server{Handler: e.h, ReadHeaderTimeout: 5 * time.Second}
		servers = append(servers, srv)
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				fmt.Fprintln(os.Stderr, "metrics server:", err)
			}
		}()
	}
	return stop, nil
}

// redactBody buffers what h answers and writes it redacted.
func redactBody(h http.Handler, redact func(string) string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &bufferedResponse{header: http.Header{}, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(rec.status)
		io.WriteString(w, redact(rec.body.String()))
	})
}

// bufferedResponse is an http.ResponseWriter that keeps what it is given.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header         { return b.header }
func (b *bufferedResponse) Write(p []byte) (int, error) { return b.body.Write(p) }
func (b *bufferedResponse) WriteHeader(status int)      { b.status = status }

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
