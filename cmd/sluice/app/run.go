package app

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

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
	tuneProcess(log, cj)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	// The process's CPU carries the job, so that throughput per vCPU is one
	// query across the fleet.
	prometheus.WrapRegistererWith(prometheus.Labels{"job": cj.Job}, reg).MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	rt, svc, err := newWorker(ctx, cj, reg, Options{Pod: podName(), Logger: log})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	stopHTTP, err := svc.serve(endpoints{public: cj.Metrics.Listen, admin: cj.Metrics.AdminListen})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer stopHTTP()
	defer svc.handleSignals(log)()
	if err := rt.Run(ctx); err != nil {
		log.Error("job failed", "error", err)
		return 1
	}
	return 0
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
