package scaler

import (
	"math"
	"sort"
	"time"
)

// KafkaSample is one reading of a job's offsets, summed over its partitions.
type KafkaSample struct {
	At time.Time
	// End is the sum of the partitions' end offsets.
	End int64
	// Backlog is the sum over partitions of end minus committed offset (end
	// minus start offset where the group has not committed yet).
	Backlog int64
	// BacklogBytes estimates the bytes of the backlog; 0 if unknown.
	BacklogBytes int64
	// Partitions is the number of partitions of the job's topics.
	Partitions int
}

// CPUSample is one scrape of the job's pods.
type CPUSample struct {
	At time.Time
	// Seconds maps a pod to its process_cpu_seconds_total counter.
	Seconds map[string]float64
	// CPUs is the CPU each pod requests, in cores: utilization is the
	// counter's rate divided by it.
	CPUs float64
}

// Window smooths samples over a sliding span into Signals. It is not safe
// for concurrent use: one goroutine (the coordinator's loop for the job, or
// the simulator) owns it. It does no I/O and reads no clock.
type Window struct {
	span  time.Duration
	kafka []KafkaSample
	cpu   []CPUSample
}

// NewWindow returns a window that smooths over span (for example 1m).
func NewWindow(span time.Duration) *Window {
	return &Window{span: span}
}

// AddKafka records a Kafka sample. Samples must come in time order.
func (w *Window) AddKafka(s KafkaSample) {
	w.kafka = append(w.kafka, s)
	cut := 0
	for cut < len(w.kafka)-1 && s.At.Sub(w.kafka[cut].At) > w.span {
		cut++
	}
	w.kafka = append(w.kafka[:0], w.kafka[cut:]...)
}

// AddCPU records a CPU sample. Samples must come in time order.
func (w *Window) AddCPU(s CPUSample) {
	w.cpu = append(w.cpu, s)
	cut := 0
	for cut < len(w.cpu)-1 && s.At.Sub(w.cpu[cut].At) > w.span {
		cut++
	}
	w.cpu = append(w.cpu[:0], w.cpu[cut:]...)
}

// Signals returns the smoothed signals at now for a job that currently has
// workers replicas. Rates need two samples: with fewer, KafkaAt (or CPUAt)
// is left zero, which the policy reads as "no decision".
func (w *Window) Signals(now time.Time, workers int) Signals {
	s := Signals{At: now, Workers: workers}
	if n := len(w.kafka); n >= 2 && w.kafka[n-1].At.After(w.kafka[0].At) {
		last := w.kafka[n-1]
		s.KafkaAt = last.At
		s.Partitions = last.Partitions
		s.BacklogBytes = last.BacklogBytes
		xs := make([]float64, n)
		ends := make([]float64, n)
		backlogs := make([]float64, n)
		var sum float64
		for i, k := range w.kafka {
			xs[i] = k.At.Sub(w.kafka[0].At).Seconds()
			ends[i] = float64(k.End)
			backlogs[i] = float64(k.Backlog)
			sum += float64(k.Backlog)
		}
		// Least-squares slopes: committed offsets move in checkpoint steps,
		// and a slope over every sample is far less jumpy than last minus
		// first.
		s.InputRate = max(0, slope(xs, ends))
		// Commits come in checkpoint steps, so the backlog is a sawtooth: a
		// slope within two standard errors of zero is reported as zero, so
		// that measurement noise never reads as growth (or as shrinking).
		g, se := slopeSE(xs, backlogs)
		if math.Abs(g) > 2*se {
			s.BacklogGrowth = g
		}
		s.Throughput = max(0, s.InputRate-s.BacklogGrowth)
		s.Backlog = int64(sum/float64(n) + 0.5)
		if last.Backlog == 0 {
			// An empty backlog now is empty, whatever the window says.
			s.Backlog = 0
		}
		if last.End == w.kafka[0].End {
			s.InputRate = 0
		}
	}
	if n := len(w.cpu); n >= 2 {
		last := w.cpu[n-1]
		var total float64
		pods := 0
		names := make([]string, 0, len(last.Seconds))
		for pod := range last.Seconds {
			names = append(names, pod)
		}
		sort.Strings(names) // a fixed summation order keeps results reproducible
		for _, pod := range names {
			v := last.Seconds[pod]
			for _, old := range w.cpu[:n-1] {
				o, ok := old.Seconds[pod]
				if !ok || v < o {
					continue // not there yet, or the counter was reset
				}
				dt := last.At.Sub(old.At).Seconds()
				if dt <= 0 || last.CPUs <= 0 {
					break
				}
				total += (v - o) / dt / last.CPUs
				pods++
				break
			}
		}
		if pods > 0 {
			s.CPU = total / float64(pods)
			s.HasCPU = true
			s.CPUAt = last.At
		}
	}
	return s
}

// slope is the least-squares slope of ys over xs.
func slope(xs, ys []float64) float64 {
	n := float64(len(xs))
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
		sxx += xs[i] * xs[i]
		sxy += xs[i] * ys[i]
	}
	den := n*sxx - sx*sx
	if den == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / den
}

// slopeSE is the least-squares slope of ys over xs and its standard error
// (zero with fewer than three points, where no error can be estimated).
func slopeSE(xs, ys []float64) (float64, float64) {
	b := slope(xs, ys)
	n := len(xs)
	if n < 3 {
		return b, 0
	}
	var mx, my float64
	for i := range xs {
		mx += xs[i]
		my += ys[i]
	}
	mx /= float64(n)
	my /= float64(n)
	var sxx, rss float64
	for i := range xs {
		sxx += (xs[i] - mx) * (xs[i] - mx)
		r := ys[i] - (my + b*(xs[i]-mx))
		rss += r * r
	}
	if sxx == 0 {
		return b, 0
	}
	return b, math.Sqrt(rss / float64(n-2) / sxx)
}
