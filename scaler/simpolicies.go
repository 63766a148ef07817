package scaler

import (
	"math"
	"time"
)

// SluiceController runs the sluice policy in the simulator through the same
// Window and Decide the coordinator uses.
type SluiceController struct {
	policy  Policy
	window  *Window
	history History
	// Decisions counts the evaluations per direction, for diagnosis.
	Decisions map[Direction]int
}

// NewSluiceController returns a controller for policy p (defaulted here)
// smoothing over span.
func NewSluiceController(p Policy, span time.Duration) *SluiceController {
	return &SluiceController{policy: p.WithDefaults(), window: NewWindow(span), Decisions: map[Direction]int{}}
}

// Name implements Controller.
func (c *SluiceController) Name() string { return "sluice" }

// Control implements Controller.
func (c *SluiceController) Control(o Observation) int {
	c.window.AddKafka(o.Kafka)
	c.window.AddCPU(o.CPU)
	d, h := Decide(c.policy, c.history, c.window.Signals(o.Now, o.Replicas))
	c.history = h
	c.Decisions[d.Direction]++
	return d.Desired
}

// KEDAController is a KEDA Kafka-scaler-style policy: the Horizontal Pod
// Autoscaler on the consumer group's total lag as an external metric with
// target LagThreshold per replica, with the HPA's defaults: 10 % tolerance,
// scale-up limited to max(double, +4 pods) per 15 s, a 300 s scale-down
// stabilization window (highest recommendation wins), replicas capped at the
// partition count; and KEDA's activation: with MinReplicas 0 the job goes to
// zero after CooldownPeriod without lag and back to one on any lag.
type KEDAController struct {
	LagThreshold   float64
	MinReplicas    int
	MaxReplicas    int
	Partitions     int
	CooldownPeriod time.Duration

	recs       []Recommendation
	lastActive time.Time
}

// Name implements Controller.
func (c *KEDAController) Name() string { return "keda" }

// Control implements Controller.
func (c *KEDAController) Control(o Observation) int {
	lag := float64(o.Kafka.Backlog)
	cur := o.Replicas
	hi := min(c.MaxReplicas, c.Partitions)
	if lag > 0 || c.lastActive.IsZero() {
		c.lastActive = o.Now
	}
	if c.MinReplicas == 0 {
		if cur == 0 {
			if lag > 0 {
				return 1
			}
			return 0
		}
		if lag == 0 && o.Now.Sub(c.lastActive) >= c.CooldownPeriod {
			c.recs = nil
			return 0
		}
	}
	if cur == 0 {
		return max(c.MinReplicas, 1)
	}
	ratio := lag / (c.LagThreshold * float64(cur))
	rec := cur
	if math.Abs(ratio-1) > 0.1 {
		rec = int(math.Ceil(lag / c.LagThreshold))
	}
	rec = min(max(rec, max(c.MinReplicas, 1)), hi)

	keep := c.recs[:0]
	for _, r := range c.recs {
		if o.Now.Sub(r.At) < 300*time.Second {
			keep = append(keep, r)
		}
	}
	c.recs = append(keep, Recommendation{At: o.Now, Workers: rec})
	desired := rec
	if rec < cur {
		highest := rec
		for _, r := range c.recs {
			highest = max(highest, r.Workers)
		}
		desired = min(cur, highest)
	}
	if desired > cur {
		desired = min(desired, max(2*cur, cur+4))
	}
	return desired
}

// StaticController provisions a fixed number of workers all day.
type StaticController struct{ Workers int }

// Name implements Controller.
func (c StaticController) Name() string { return "static-peak" }

// Control implements Controller.
func (c StaticController) Control(Observation) int { return c.Workers }

// PeakWorkers is the fewest workers whose capacity covers the trace's peak
// input with 10 % headroom: how a static job is provisioned.
func PeakWorkers(job SimJob, tr Trace) int {
	peak := 0.0
	for t := time.Duration(0); t < tr.Length; t += time.Minute {
		peak = max(peak, tr.Rate(t))
	}
	need := peak * 1.1 / job.PerWorker
	return min(max(workersFor(need, job.Partitions), job.MinWorkers), job.MaxWorkers)
}

// Traces returns the four traces of the report, each 24 h.
func Traces() []Trace {
	day := 24 * time.Hour
	h := func(x float64) time.Duration { return time.Duration(x * float64(time.Hour)) }
	diurnal := func(lo, hi float64) func(time.Duration) float64 {
		return func(t time.Duration) float64 {
			// Lowest at 03:00, highest at 15:00.
			phase := 2 * math.Pi * (t - 3*time.Hour).Hours() / 24
			return lo + (hi-lo)*(1-math.Cos(phase))/2
		}
	}
	return []Trace{
		{
			Name: "diurnal", Length: day,
			Rate: diurnal(20000, 100000),
		},
		{
			Name: "step-spike", Length: day,
			Rate: func(t time.Duration) float64 {
				if t >= h(10) && t < h(11) {
					return 120000 // 4x for an hour
				}
				return 30000
			},
		},
		{
			Name: "rollout-backlog", Length: day,
			Rate: diurnal(30000, 70000),
			// A rollout restarts every pod at 14:00; nothing is consumed
			// for 5 minutes and the job comes back to ~20M records of backlog.
			Outages: []Span{{From: h(14), To: h(14) + 5*time.Minute}},
		},
		{
			Name: "idle-nights", Length: day, ScaleToZero: true,
			Rate: func(t time.Duration) float64 {
				x := t.Hours()
				switch {
				case x < 7 || x >= 20:
					return 0
				case x < 8:
					return 60000 * (x - 7)
				case x < 18:
					return 60000
				default:
					return 60000 * (20 - x) / 2
				}
			},
		},
	}
}
