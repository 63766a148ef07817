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
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/config"
)

// service is what a long-running command (run, dev, coordinator) exposes and
// how it stops: the one serve/health/drain path they share. Every field but
// registry may be nil.
type service struct {
	// registry is served at /metrics, through gatherer when it is set.
	registry *prometheus.Registry
	// gatherer, if set, is what /metrics serves of registry (a worker's
	// bounded default set, engine.Exported).
	gatherer prometheus.Gatherer
	// redact removes secrets from everything served: a readiness reason or
	// a metric label may quote an error. nil serves as is.
	redact func(string) string
	// ready answers /readyz; nil is always ready.
	ready func() (bool, string)
	// status serves the status page at / (HTML, or JSON when asked); nil
	// serves none.
	status http.Handler
	// drain is called by POST /drain on the admin endpoint and on the first
	// SIGTERM or SIGINT (ctx, from main, ends too).
	drain func()
	// abort is called on the second signal: stop at once.
	abort func()
}

// newWorker builds the runtime of a loaded job (run and dev): its components
// (Build with o), the runtime, the source's problems relayed to its
// readiness, and the service that exposes it.
// reg is o's Registry, served at /metrics.
func newWorker(ctx context.Context, cj *config.Job, reg *prometheus.Registry, o Options) (*engine.Runtime, service, error) {
	var health healthRelay
	o.Registry, o.OnHealth = reg, health.report
	built, err := Build(ctx, cj, o)
	if err != nil {
		return nil, service{}, err
	}
	rt, err := engine.New(built.Job)
	if err != nil {
		return nil, service{}, err
	}
	health.set(rt)
	reg.MustRegister(rt.Collector(cj.Metrics.PerPartition))
	return rt, workerService(rt, reg, cj.Metrics.PerPartition, cj.Redactor()), nil
}

// workerService is the service of a job's runtime (run and dev): by default
// /metrics serves the bounded per-job set, every series with perPartition
// (metrics.per_partition).
func workerService(rt *engine.Runtime, reg *prometheus.Registry, perPartition bool, redact func(string) string) service {
	return service{
		registry: reg, gatherer: engine.Exported(reg, perPartition),
		redact: redact, ready: rt.Ready, drain: rt.Drain, abort: rt.Abort,
		status: statusHandler(rt),
	}
}

// endpoints are the addresses of a command's HTTP servers; "off" or ""
// disables one.
type endpoints struct {
	// public serves /metrics, /healthz, /readyz and the status page at /:
	// what a scraper or a kubelet reads, nothing that changes state.
	public string
	// admin serves POST /drain. A worker's defaults to loopback, so that
	// whoever reaches a pod's public port cannot stop it.
	admin string
}

// serve starts the service's HTTP servers and returns the function that
// shuts them down. An address that cannot be listened on is an error, and
// nothing is left running.
func (s service) serve(at endpoints) (stop func(), err error) {
	redact := s.redact
	if redact == nil {
		redact = func(v string) string { return v }
	}
	mux := http.NewServeMux()
	var gatherer prometheus.Gatherer = s.registry
	if s.gatherer != nil {
		gatherer = s.gatherer
	}
	mux.Handle("/metrics", redactBody(promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{Registry: s.registry, DisableCompression: true}), redact))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if s.ready != nil {
			if ok, why := s.ready(); !ok {
				http.Error(w, "not ready: "+redact(why), http.StatusServiceUnavailable)
				return
			}
		}
		io.WriteString(w, "ready\n")
	})
	if s.status != nil {
		mux.Handle("/{$}", redactBody(s.status, redact))
	}
	admin := http.NewServeMux()
	if s.drain != nil {
		admin.HandleFunc("POST /drain", func(w http.ResponseWriter, _ *http.Request) {
			s.drain()
			io.WriteString(w, "draining\n")
		})
	}
	var servers []*http.Server
	stop = func() {
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

// handleSignals makes the first SIGTERM or SIGINT drain (ctx, from main,
// ends too) and a second one abort at once: an operator who does not want
// to wait for the drain deadline need not reach for SIGKILL, and what is not
// committed is replayed by the next owner. stop undoes it.
func (s service) handleSignals(log *slog.Logger) (stop func()) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		n := 0
		for {
			select {
			case sig := <-sigs:
				n++
				if n == 1 {
					if s.drain != nil {
						s.drain()
					}
					continue
				}
				log.Warn("second signal: stopping at once; uncommitted records are replayed by the next owner", "signal", sig.String())
				if s.abort != nil {
					s.abort()
				}
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(done)
		<-exited
	}
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
