package scaler

import (
	"math"
	"time"
)

// SimJob describes the simulated job: what a worker can do and what a
// rescale costs.
type SimJob struct {
	// Partitions of the job's topics. Input is spread evenly over them; a
	// partition is the unit of assignment, so the worker owning the most
	// partitions bounds the throughput (P / ceil(P/n) worker-equivalents).
	Partitions int
	// PerWorker is one worker's throughput at 100 % CPU, records/s.
	PerWorker float64
	// CPUs is the CPU each worker requests, cores.
	CPUs float64
	// Noise is the relative amplitude of per-minute capacity noise and of
	// input noise (uniform in ±Noise).
	Noise float64
	// StartDelay is how long a new pod takes to become ready.
	StartDelay time.Duration
	// Pause is how long the tasks moved by a rebalance stop (drain on the old
	// owner, restore on the new one).
	Pause time.Duration
	// Checkpoint is the checkpoint (and offset commit) interval.
	Checkpoint time.Duration
	// Step is the simulation step; Interval how often a controller runs.
	Step, Interval time.Duration
	// MinWorkers and MaxWorkers bound every policy (the oracle too).
	MinWorkers, MaxWorkers int
}

// DefaultSimJob is the job the report uses: 64 partitions, 5,000 records/s
// per 1-vCPU worker, ±5 % noise, 30 s pod start, 15 s pause of moved tasks,
// 10 s checkpoints, a 5 s step and a 15 s control interval.
func DefaultSimJob() SimJob {
	return SimJob{
		Partitions: 64, PerWorker: 5000, CPUs: 1, Noise: 0.05,
		StartDelay: 30 * time.Second, Pause: 15 * time.Second, Checkpoint: 10 * time.Second,
		Step: 5 * time.Second, Interval: 15 * time.Second,
		MinWorkers: 1, MaxWorkers: 64,
	}
}

// Span is a half-open interval of simulated time.
type Span struct{ From, To time.Duration }

// Trace is an input trace: the mean input rate over time, plus the outages
// during which the job consumes nothing (a code rollout restarting every pod).
type Trace struct {
	Name   string
	Length time.Duration
	// Rate is the mean input rate at t, records/s, before noise.
	Rate    func(t time.Duration) float64
	Outages []Span
	// ScaleToZero lets the autoscalers (and the oracle) go to zero workers.
	ScaleToZero bool
}

// Observation is what a controller sees at one control interval: exactly
// what the coordinator reads from Kafka and from the pods.
type Observation struct {
	Now      time.Time
	Replicas int
	Kafka    KafkaSample
	CPU      CPUSample
}

// Controller is a scaling policy under simulation. The simulator calls it
// from one goroutine, once per control interval, with observations in time
// order.
type Controller interface {
	Name() string
	// Control returns the replicas the job should have.
	Control(o Observation) int
}

// SimResult is the outcome of one policy on one trace.
type SimResult struct {
	Policy, Trace    string
	Minutes          int
	SLAMinutes       int     // minutes whose backlog time stayed under the SLA
	WorkerMinutes    float64 // replicas integrated over time
	Rescales         int     // changes of the replica count
	MaxBacklogTimeS  float64 // worst backlog time seen, seconds (+Inf if stalled with backlog)
	ViolationMinutes []int   // which minutes missed the SLA, for diagnosis
	Replicas         []int   // replicas at the end of each minute, for diagnosis
}

// SLA is the share of minutes that met the SLA.
func (r SimResult) SLA() float64 {
	if r.Minutes == 0 {
		return 0
	}
	return float64(r.SLAMinutes) / float64(r.Minutes)
}

// SimSLA is the backlog time a minute must stay under to count as met.
const SimSLA = 120 * time.Second

// simEpoch anchors simulated time to a wall-clock value for the policy.
func simEpoch() time.Time { return time.Date(2025, 1, 6, 0, 0, 0, 0, time.UTC) }

type simPod struct {
	readyAt time.Duration
	cpu     float64 // process_cpu_seconds_total
	name    string
}

// world is the simulated job. It is a value type but for pods: clone copies
// the slice so that the oracle can try futures.
type world struct {
	job   SimJob
	trace Trace
	seed  uint64
	ideal bool // oracle: no start delay, no pause

	t            time.Duration
	arrived      float64
	processed    float64
	committedPos float64
	lastCkpt     time.Duration
	pods         []simPod
	ready        int
	pauseUntil   time.Duration
	pausedFrac   float64
	nextPodID    int
}

func (w *world) clone() *world {
	c := *w
	c.pods = append([]simPod(nil), w.pods...)
	return &c
}

func (w *world) setReplicas(n int) {
	for len(w.pods) < n {
		ready := w.t + w.job.StartDelay
		if w.ideal {
			ready = w.t
		}
		w.pods = append(w.pods, simPod{readyAt: ready, name: podName(w.nextPodID)})
		w.nextPodID++
	}
	if n < len(w.pods) {
		w.pods = w.pods[:n]
	}
}

func podName(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return "w-" + digits[i:i+1]
	}
	b := []byte{}
	for i > 0 {
		b = append([]byte{digits[i%10]}, b...)
		i /= 10
	}
	return "w-" + string(b)
}

// step advances the world by one step and returns the backlog time at its
// end, seconds (+Inf when records wait and nothing is processed).
func (w *world) step() float64 {
	dt := w.job.Step.Seconds()
	ready := 0
	for _, p := range w.pods {
		if p.readyAt <= w.t {
			ready++
		}
	}
	if ready != w.ready && !w.ideal {
		// A rebalance: the tasks that change owner pause while they are
		// drained and restored. Only they stop; the others keep running.
		moved := math.Abs(float64(ready-w.ready)) / float64(max(ready, w.ready))
		w.pausedFrac = moved
		w.pauseUntil = w.t + w.job.Pause
	}
	w.ready = ready

	minute := uint64(w.t / time.Minute)
	rate := w.trace.Rate(w.t) * (1 + w.job.Noise*noise(w.seed, 1, uint64(w.t/w.job.Step), 0))
	rate = max(rate, 0)
	capacity := 0.0
	for i := range ready {
		capacity += w.job.PerWorker * (1 + w.job.Noise*noise(w.seed, 2, minute, uint64(i)))
	}
	if ready > 0 {
		capacity *= balance(w.job.Partitions, ready)
	}
	if w.t < w.pauseUntil {
		capacity *= 1 - w.pausedFrac
	}
	for _, o := range w.trace.Outages {
		if w.t >= o.From && w.t < o.To {
			capacity = 0
		}
	}

	w.arrived += rate * dt
	proc := min(w.arrived-w.processed, capacity*dt)
	w.processed += proc
	if ready > 0 {
		util := proc / (float64(ready) * w.job.PerWorker * dt)
		for i := range w.pods {
			if w.pods[i].readyAt <= w.t {
				w.pods[i].cpu += util * w.job.CPUs * dt
			}
		}
	}
	w.t += w.job.Step
	if w.t-w.lastCkpt >= w.job.Checkpoint {
		w.committedPos = w.processed
		w.lastCkpt = w.t
	}

	backlog := w.arrived - w.processed
	switch {
	case backlog < 1:
		return 0
	case proc <= 0:
		return math.Inf(1)
	default:
		return backlog / (proc / dt)
	}
}

func (w *world) observe() Observation {
	now := simEpoch().Add(w.t)
	secs := make(map[string]float64, len(w.pods))
	for _, p := range w.pods {
		if p.readyAt <= w.t {
			secs[p.name] = p.cpu
		}
	}
	return Observation{
		Now:      now,
		Replicas: len(w.pods),
		Kafka: KafkaSample{
			At: now, End: int64(w.arrived), Backlog: int64(w.arrived) - int64(w.committedPos),
			Partitions: w.job.Partitions,
		},
		CPU: CPUSample{At: now, Seconds: secs, CPUs: w.job.CPUs},
	}
}

// balance is the share of n workers' capacity usable with p evenly loaded
// partitions: the busiest worker owns ceil(p/n) of them.
func balance(p, n int) float64 {
	if p <= 0 || n <= 0 {
		return 1
	}
	if n > p {
		return float64(p) / float64(n)
	}
	per := (p + n - 1) / n
	return float64(p) / float64(per) / float64(n)
}

// Simulate runs one controller over one trace. It is deterministic: the same
// arguments give the same result.
func Simulate(job SimJob, tr Trace, seed uint64, c Controller) SimResult {
	w := &world{job: job, trace: tr, seed: seed}
	res := SimResult{Policy: c.Name(), Trace: tr.Name}
	// Start right-sized for the first minute's input.
	first := max(workersFor(tr.Rate(0)/(job.PerWorker*0.8), job.Partitions), job.MinWorkers)
	if s, ok := c.(StaticController); ok {
		first = s.Workers
	}
	w.setReplicas(first)
	// Start in a steady state: the initial pods are already running.
	for i := range w.pods {
		w.pods[i].readyAt = 0
	}
	w.ready = len(w.pods)

	stepsPerMinute := int(time.Minute / job.Step)
	stepsPerControl := int(job.Interval / job.Step)
	worst := 0.0
	minuteOK := true
	for i := 0; w.t < tr.Length; i++ {
		if i > 0 && i%stepsPerControl == 0 {
			n := c.Control(w.observe())
			if n != len(w.pods) {
				res.Rescales++
			}
			w.setReplicas(n)
		}
		res.WorkerMinutes += float64(len(w.pods)) * job.Step.Minutes()
		bt := w.step()
		worst = max(worst, bt)
		if bt >= SimSLA.Seconds() {
			minuteOK = false
		}
		if (i+1)%stepsPerMinute == 0 {
			res.Replicas = append(res.Replicas, len(w.pods))
			res.Minutes++
			if minuteOK {
				res.SLAMinutes++
			} else {
				res.ViolationMinutes = append(res.ViolationMinutes, res.Minutes-1)
			}
			minuteOK = true
		}
	}
	res.MaxBacklogTimeS = worst
	return res
}

// Oracle runs the fewest workers that meet the SLA minute by minute, knowing
// each minute's input and capacity in advance, with no start delay and no
// pause: a lower bound on cost, not a policy anyone can run.
func Oracle(job SimJob, tr Trace, seed uint64) SimResult {
	w := &world{job: job, trace: tr, seed: seed, ideal: true}
	res := SimResult{Policy: "oracle", Trace: tr.Name}
	lo := max(job.MinWorkers, 1)
	if tr.ScaleToZero {
		lo = 0
	}
	hi := min(job.MaxWorkers, job.Partitions)
	stepsPerMinute := int(time.Minute / job.Step)
	current := -1
	worst := 0.0
	for w.t < tr.Length {
		best, bestBacklog := -1, math.Inf(1)
		for n := lo; n <= hi; n++ {
			if job.Partitions > 0 && n > 0 && n != balancedCount(job.Partitions, n) {
				continue // same capacity as a smaller count
			}
			c := w.clone()
			c.setReplicas(n)
			ok := true
			for range stepsPerMinute {
				if c.step() >= SimSLA.Seconds() {
					ok = false
				}
			}
			if ok {
				best = n
				break
			}
			if b := c.arrived - c.processed; b < bestBacklog {
				best, bestBacklog = n, b
			}
		}
		if best != current && current >= 0 {
			res.Rescales++
		}
		current = best
		w.setReplicas(best)
		ok := true
		for range stepsPerMinute {
			res.WorkerMinutes += float64(best) * job.Step.Minutes()
			bt := w.step()
			worst = max(worst, bt)
			if bt >= SimSLA.Seconds() {
				ok = false
			}
		}
		res.Replicas = append(res.Replicas, best)
		res.Minutes++
		if ok {
			res.SLAMinutes++
		} else {
			res.ViolationMinutes = append(res.ViolationMinutes, res.Minutes-1)
		}
	}
	res.MaxBacklogTimeS = worst
	return res
}

// noise is a deterministic uniform value in [-1, 1) from a seed and three
// coordinates (splitmix64), so that every policy sees the same world.
func noise(seed, kind, a, b uint64) float64 {
	x := seed ^ kind*0x9e3779b97f4a7c15 ^ a*0xbf58476d1ce4e5b9 ^ b*0x94d049bb133111eb
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11)/float64(1<<52) - 1
}
