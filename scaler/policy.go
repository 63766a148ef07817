package scaler

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Policy holds the thresholds of the scaling policy for one job. The zero
// value of a field means "use the default" documented next to it; the
// defaults are those of the reference deployment (DESIGN.md, Coordinator).
type Policy struct {
	// MinWorkers is the lower bound of replicas while the job has input.
	// Default 1.
	MinWorkers int
	// MaxWorkers is the upper bound of replicas. The partition count of the
	// job's topics is a further bound. Default 50.
	MaxWorkers int

	// UpBacklogTime: scale up when backlog time exceeds it. Default 120s.
	UpBacklogTime time.Duration
	// UpCPU: scale up when the workers' CPU utilization exceeds it while the
	// job is not keeping up (the backlog grows, or backlog time exceeds
	// DownBacklogTime). A busy job whose backlog stays small is using the
	// capacity it pays for, not short of it. Default 0.90.
	UpCPU float64
	// UpLead is how far ahead the backlog time is predicted from the
	// backlog's growth: scale up when the predicted backlog time exceeds
	// UpBacklogTime. Default 60s.
	UpLead time.Duration
	// CatchUpWithin: a scale-up adds the workers that drain the backlog within
	// this time. Default 60s.
	CatchUpWithin time.Duration

	// DownCPU: scale down only when CPU utilization is below it (and the
	// backlog neither grows nor exceeds DownBacklogTime). Default 0.80:
	// with the 0.95 target, a job leaves a balanced count only when the next
	// smaller one would run at or under the target.
	DownCPU float64
	// DownBacklogTime: scale down only when backlog time is below it.
	// Default 10s.
	DownBacklogTime time.Duration
	// TargetCPU is the utilization a resize aims at, both for the keep-up part
	// of a scale-up and for the CPU-driven scale-down. Default 0.95: the
	// guard against running short is the backlog (UpLead, UpBacklogTime),
	// which the SLA allows 120 s of, not CPU headroom.
	TargetCPU float64

	// UpWindow is the scale-up stabilization window: the lowest recommendation
	// within it wins. Default 0 (scale up at once).
	UpWindow time.Duration
	// DownWindow is the scale-down stabilization window: the highest
	// recommendation within it wins, so one quiet sample never shrinks a job.
	// Default 5m.
	DownWindow time.Duration
	// Settle is how long after a rescale the throughput of the job is not
	// trusted as a measure of per-worker capacity (moved tasks pause, new pods
	// start). Default 2m.
	Settle time.Duration

	// ScaleToZero enables scaling to zero replicas once the job has had no
	// input and no backlog for IdleAfter; the first new record scales it back
	// to max(1, MinWorkers). Default off.
	ScaleToZero bool
	// IdleAfter is the idle time before scaling to zero. Default 30m.
	IdleAfter time.Duration

	// StaleAfter: signals older than this mean "no decision". Default 2m.
	StaleAfter time.Duration
}

// Defaults of Policy, in one place.
const (
	DefaultMinWorkers      = 1
	DefaultMaxWorkers      = 50
	DefaultUpBacklogTime   = 120 * time.Second
	DefaultUpCPU           = 0.90
	DefaultCatchUpWithin   = 60 * time.Second
	DefaultUpLead          = 60 * time.Second
	DefaultDownCPU         = 0.80
	DefaultDownBacklogTime = 10 * time.Second
	DefaultTargetCPU       = 0.95
	DefaultDownWindow      = 5 * time.Minute
	DefaultSettle          = 2 * time.Minute
	DefaultIdleAfter       = 30 * time.Minute
	DefaultStaleAfter      = 2 * time.Minute
)

// WithDefaults returns p with every zero field set to its default.
func (p Policy) WithDefaults() Policy {
	if p.MinWorkers == 0 && !p.ScaleToZero {
		p.MinWorkers = DefaultMinWorkers
	}
	if p.MaxWorkers == 0 {
		p.MaxWorkers = DefaultMaxWorkers
	}
	setDur(&p.UpBacklogTime, DefaultUpBacklogTime)
	setF(&p.UpCPU, DefaultUpCPU)
	setDur(&p.CatchUpWithin, DefaultCatchUpWithin)
	setDur(&p.UpLead, DefaultUpLead)
	setF(&p.DownCPU, DefaultDownCPU)
	setDur(&p.DownBacklogTime, DefaultDownBacklogTime)
	setF(&p.TargetCPU, DefaultTargetCPU)
	setDur(&p.DownWindow, DefaultDownWindow)
	setDur(&p.Settle, DefaultSettle)
	setDur(&p.IdleAfter, DefaultIdleAfter)
	setDur(&p.StaleAfter, DefaultStaleAfter)
	return p
}

func setDur(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}

func setF(f *float64, def float64) {
	if *f == 0 {
		*f = def
	}
}

// Validate reports every inconsistent threshold of a defaulted policy.
func (p Policy) Validate() error {
	var errs []error
	if p.MinWorkers < 0 {
		errs = append(errs, fmt.Errorf("min workers %d is negative", p.MinWorkers))
	}
	if p.MaxWorkers < 1 || p.MaxWorkers < p.MinWorkers {
		errs = append(errs, fmt.Errorf("max workers %d must be at least 1 and at least min workers %d", p.MaxWorkers, p.MinWorkers))
	}
	if p.DownCPU >= p.UpCPU {
		errs = append(errs, fmt.Errorf("down cpu %.2f must be below up cpu %.2f", p.DownCPU, p.UpCPU))
	}
	if p.TargetCPU <= 0 || p.TargetCPU > 1 {
		errs = append(errs, fmt.Errorf("target cpu %.2f must be in (0, 1]", p.TargetCPU))
	}
	if p.DownBacklogTime >= p.UpBacklogTime {
		errs = append(errs, fmt.Errorf("down backlog time %s must be below up backlog time %s", p.DownBacklogTime, p.UpBacklogTime))
	}
	for name, d := range map[string]time.Duration{
		"catch-up": p.CatchUpWithin, "up lead": p.UpLead, "up window": p.UpWindow, "down window": p.DownWindow,
		"settle": p.Settle, "idle after": p.IdleAfter, "stale after": p.StaleAfter,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s duration %s is negative", name, d))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	return nil
}

// Signals are the smoothed observations of one job at one instant, as made
// by Window. Rates are records per second.
type Signals struct {
	// At is the time of the decision.
	At time.Time
	// KafkaAt is when the newest Kafka sample was taken; zero if none.
	KafkaAt time.Time
	// CPUAt is when the newest CPU sample was taken; zero if none.
	CPUAt time.Time

	Workers    int // current replicas
	Partitions int // partitions of the job's topics; 0 if unknown

	InputRate     float64 // records/s appended to the job's partitions
	Throughput    float64 // records/s committed by the job
	Backlog       int64   // records between committed and end offsets (smoothed over the window)
	BacklogBytes  int64   // bytes of that backlog, estimated; 0 if unknown
	BacklogGrowth float64 // records/s, d backlog / dt over the window

	// CPU is the mean utilization of the workers' requested CPU, 0..1 (it
	// may exceed 1 when a pod bursts above its request).
	CPU    float64
	HasCPU bool
}

// BacklogTime is backlog / throughput: how long the job needs to work off its
// backlog at its current pace. A backlog with no throughput is infinite.
func (s Signals) BacklogTime() time.Duration {
	if s.Backlog <= 0 {
		return 0
	}
	if s.Throughput <= 0 {
		return time.Duration(math.MaxInt64)
	}
	sec := float64(s.Backlog) / s.Throughput
	if sec >= float64(math.MaxInt64/int64(time.Second)) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(sec * float64(time.Second))
}

// Direction of a decision.
type Direction int

const (
	Hold Direction = iota
	Up
	Down
)

func (d Direction) String() string {
	switch d {
	case Up:
		return "up"
	case Down:
		return "down"
	default:
		return "none"
	}
}

// Decision is the outcome of one evaluation of the policy.
type Decision struct {
	At          time.Time
	Current     int
	Recommended int // before stabilization and bounds
	Desired     int // what the replicas should be set to
	Direction   Direction
	// NoDecision is set when the signals are missing or stale: Desired is
	// then Current.
	NoDecision bool
	Reasons    []string
}

// Recommendation is one entry of the stabilization history.
type Recommendation struct {
	At      time.Time
	Workers int
}

// History is what Decide remembers between evaluations. Decide never
// mutates the History it is given; it returns the next one. The zero value is
// an empty history.
type History struct {
	// Recs are the recommendations within the longest stabilization window,
	// oldest first.
	Recs []Recommendation
	// IdleSince is when the job last became idle (no input, no backlog); zero
	// while it is not idle.
	IdleSince time.Time
	// LastChange is when Decide last changed the replicas.
	LastChange time.Time
	// PerWorker is the last trusted estimate of one worker's throughput at
	// 100 % CPU, records/s; 0 if none yet.
	PerWorker float64
}

// Decide evaluates the policy: signals and history in, decision and the next
// history out. It is a pure function: no I/O, no clock (time is s.At), and the
// same arguments always give the same result. p must be defaulted
// (WithDefaults) and valid.
func Decide(p Policy, h History, s Signals) (Decision, History) {
	now := s.At
	next := History{
		IdleSince:  h.IdleSince,
		LastChange: h.LastChange,
		PerWorker:  h.PerWorker,
	}
	d := Decision{At: now, Current: s.Workers, Desired: s.Workers, Recommended: s.Workers}

	hi := p.MaxWorkers
	if s.Partitions > 0 && s.Partitions < hi {
		hi = s.Partitions
	}
	lo := min(p.MinWorkers, hi)

	if s.KafkaAt.IsZero() || now.Sub(s.KafkaAt) > p.StaleAfter {
		d.NoDecision = true
		d.Reasons = append(d.Reasons, "kafka signals missing or stale")
		next.Recs = pruneRecs(h.Recs, now, max(p.UpWindow, p.DownWindow))
		return d, next
	}
	if s.Workers > 0 && (!s.HasCPU || now.Sub(s.CPUAt) > p.StaleAfter) {
		d.NoDecision = true
		d.Reasons = append(d.Reasons, "cpu signal missing or stale")
		next.Recs = pruneRecs(h.Recs, now, max(p.UpWindow, p.DownWindow))
		return d, next
	}

	idle := s.InputRate <= 0 && s.Backlog <= 0
	switch {
	case !idle:
		next.IdleSince = time.Time{}
	case next.IdleSince.IsZero():
		next.IdleSince = now
	}

	// Per-worker capacity: trusted only when the worker count has been stable
	// long enough that throughput reflects it, and the workers are busy enough
	// for the ratio to mean something.
	settled := h.LastChange.IsZero() || now.Sub(h.LastChange) >= p.Settle
	if settled && s.Workers > 0 && s.Throughput > 0 && s.CPU >= 0.3 {
		next.PerWorker = s.Throughput / (float64(s.Workers) * min(s.CPU, 1))
	}

	bt := s.BacklogTime()
	// The backlog time a scale-up decided now would meet when it takes
	// effect: the backlog grows at its present pace for UpLead.
	pbt := bt
	if s.BacklogGrowth > 0 && s.Throughput > 0 && bt < time.Duration(math.MaxInt64) {
		sec := (float64(s.Backlog) + s.BacklogGrowth*p.UpLead.Seconds()) / s.Throughput
		if sec >= float64(math.MaxInt64/int64(time.Second)) {
			pbt = time.Duration(math.MaxInt64)
		} else {
			pbt = time.Duration(sec * float64(time.Second))
		}
	}
	// High CPU alone is not a shortage: a job that keeps up at 94 % uses the
	// capacity it pays for. It is one when the backlog grows, or stays above
	// the few seconds of a healthy job's checkpoint sawtooth (the growth
	// signal reads as zero while a job falls behind slowly).
	hot := s.CPU > p.UpCPU && (s.BacklogGrowth > 0 || bt > p.DownBacklogTime)
	rec := s.Workers
	switch {
	case s.Workers == 0:
		if !idle {
			rec = max(1, lo)
			d.Reasons = append(d.Reasons, "input resumed on a job scaled to zero")
		} else {
			rec = 0
		}
	case pbt > p.UpBacklogTime || hot:
		switch {
		case bt > p.UpBacklogTime:
			d.Reasons = append(d.Reasons, fmt.Sprintf("backlog time %s > %s", fmtDur(bt), p.UpBacklogTime))
		case pbt > p.UpBacklogTime:
			d.Reasons = append(d.Reasons, fmt.Sprintf("backlog time %s in %s > %s", fmtDur(pbt), p.UpLead, p.UpBacklogTime))
		}
		if hot {
			d.Reasons = append(d.Reasons, fmt.Sprintf("cpu %.0f%% > %.0f%% with backlog growing %.0f/s", 100*s.CPU, 100*p.UpCPU, s.BacklogGrowth))
		}
		pw := next.PerWorker
		if pw <= 0 {
			rec = 2 * s.Workers
			d.Reasons = append(d.Reasons, "no capacity estimate yet: doubling")
			break
		}
		keep := s.InputRate / (pw * p.TargetCPU)
		catch := 0.0
		if bt > p.DownBacklogTime {
			catch = float64(s.Backlog) / (p.CatchUpWithin.Seconds() * pw)
		}
		rec = workersFor(keep+catch, s.Partitions)
		d.Reasons = append(d.Reasons, fmt.Sprintf("keep-up %.1f + catch-up %.1f workers at %.0f rec/s per worker", keep, catch, pw))
		if rec <= s.Workers && pbt > p.UpBacklogTime {
			// The estimate says the workers suffice, yet the backlog is
			// over the SLA: trust the backlog.
			rec = s.Workers + 1
		}
		rec = max(rec, s.Workers)
	case s.CPU < p.DownCPU && s.BacklogGrowth <= 0 && bt < p.DownBacklogTime:
		rec = workersFor(float64(s.Workers)*s.CPU/p.TargetCPU, s.Partitions)
		rec = min(max(rec, 1), s.Workers)
		d.Reasons = append(d.Reasons, fmt.Sprintf("cpu %.0f%% < %.0f%%, backlog growth %.0f/s, backlog time %s", 100*s.CPU, 100*p.DownCPU, s.BacklogGrowth, fmtDur(bt)))
	default:
		rec = s.Workers
	}
	d.Recommended = rec

	window := max(p.UpWindow, p.DownWindow)
	next.Recs = append(pruneRecs(h.Recs, now, window), Recommendation{At: now, Workers: rec})

	// Stabilize: up to the lowest recommendation of the up window, down to the
	// highest of the down window (the Kubernetes HPA rule).
	upMin, downMax := rec, rec
	for _, r := range next.Recs {
		age := now.Sub(r.At)
		if age <= p.UpWindow {
			upMin = min(upMin, r.Workers)
		}
		if age <= p.DownWindow {
			downMax = max(downMax, r.Workers)
		}
	}
	desired := s.Workers
	switch {
	case s.Workers < upMin:
		desired = upMin
	case s.Workers > downMax:
		desired = downMax
	}

	zero := p.ScaleToZero && idle && !next.IdleSince.IsZero() && now.Sub(next.IdleSince) >= p.IdleAfter
	switch {
	case zero:
		if s.Workers > 0 {
			d.Reasons = append(d.Reasons, fmt.Sprintf("idle for %s", now.Sub(next.IdleSince)))
		}
		desired = 0
	case p.ScaleToZero && s.Workers == 0 && idle:
		desired = 0
	default:
		if desired > hi {
			desired = hi
			d.Reasons = append(d.Reasons, fmt.Sprintf("capped at %d (max workers %d, partitions %d)", hi, p.MaxWorkers, s.Partitions))
		}
		if desired < lo {
			desired = lo
		}
		if desired == 0 {
			desired = max(1, lo)
		}
	}

	d.Desired = desired
	switch {
	case desired > s.Workers:
		d.Direction = Up
	case desired < s.Workers:
		d.Direction = Down
	}
	if d.Direction != Hold {
		next.LastChange = now
	}
	return d, next
}

// pruneRecs returns the recommendations younger than window, in a new slice
// so that the caller's history is never aliased.
func pruneRecs(recs []Recommendation, now time.Time, window time.Duration) []Recommendation {
	out := make([]Recommendation, 0, len(recs)+1)
	for _, r := range recs {
		if now.Sub(r.At) <= window {
			out = append(out, r)
		}
	}
	return out
}

func fmtDur(d time.Duration) string {
	if d == time.Duration(math.MaxInt64) {
		return "inf"
	}
	return d.Round(time.Second).String()
}

// workersFor is the fewest workers that give x worker-equivalents of
// capacity when p partitions are the unit of assignment: with n workers the
// busiest owns ceil(p/n) partitions and bounds the job at p/ceil(p/n)
// worker-equivalents, so counts between two "balanced" counts add pods but
// no capacity. With p unknown (0) it is ceil(x).
func workersFor(x float64, p int) int {
	if x <= 0 {
		return 0
	}
	if p <= 0 {
		return int(math.Ceil(x - 1e-9))
	}
	if x >= float64(p) {
		return p
	}
	per := int(math.Floor(float64(p)/x + 1e-9)) // most partitions one worker may own
	per = max(per, 1)
	return (p + per - 1) / per
}

// balancedCount is the fewest workers with the same busiest-worker load as n.
func balancedCount(p, n int) int {
	if p <= 0 || n <= 0 {
		return n
	}
	if n >= p {
		return p
	}
	per := (p + n - 1) / n
	return (p + per - 1) / per
}
