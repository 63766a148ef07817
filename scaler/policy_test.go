package scaler

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2025, 1, 6, 12, 0, 0, 0, time.UTC)

// steady returns signals of a job with w workers that keeps up with input at
// cpu utilization, 5,000 records/s per worker at 100 % CPU.
func steady(w int, cpu float64) Signals {
	rate := float64(w) * cpu * 5000
	return Signals{
		At: t0, KafkaAt: t0, CPUAt: t0, Workers: w, Partitions: 64,
		InputRate: rate, Throughput: rate, Backlog: int64(rate * 3), CPU: cpu, HasCPU: true,
	}
}

func TestPolicyTable(t *testing.T) {
	p := Policy{MinWorkers: 2, MaxWorkers: 40}.WithDefaults()
	zero := Policy{ScaleToZero: true, IdleAfter: 10 * time.Minute}.WithDefaults()
	known := History{PerWorker: 5000}
	tests := []struct {
		name    string
		policy  Policy
		history History
		signals func() Signals
		want    int
		dir     Direction
		none    bool
	}{
		{"steady state holds", p, known, func() Signals { return steady(8, 0.8) }, 8, Hold, false},
		{"cpu above 90% keeping up holds", p, known, func() Signals { return steady(8, 0.95) }, 8, Hold, false},
		{"cpu above 90% with growing backlog scales up to target", p, known, func() Signals {
			s := steady(8, 0.95)
			s.InputRate = 45000
			s.BacklogGrowth = 7000 // keep-up 9.5 workers at 95 %: 11 is the next balanced count
			return s
		}, 11, Up, false},
		{"cpu above 90% with backlog time above 10s adds catch-up", p, known, func() Signals {
			s := steady(8, 0.95)
			s.Backlog = 1_140_000 // 30 s; keep-up 8 + catch-up 3.8
			return s
		}, 13, Up, false},
		{"backlog time predicted above 120s scales up", p, known, func() Signals {
			s := steady(8, 1)
			s.InputRate = 50000
			s.BacklogGrowth = 10000
			s.Backlog = 4_400_000 // 110 s now, 125 s in a minute; keep-up 10.5 + catch-up 14.7
			return s
		}, 32, Up, false},
		{"backlog time above 120s adds catch-up", p, known, func() Signals {
			s := steady(8, 1)
			s.InputRate = 50000
			s.Throughput = 40000
			s.BacklogGrowth = 10000
			s.Backlog = 6_000_000 // 150 s; catch-up 20 workers, keep-up 11.8
			return s
		}, 32, Up, false},
		{"capped by max workers", p, known, func() Signals {
			s := steady(8, 1)
			s.Backlog = 100_000_000
			return s
		}, 40, Up, false},
		{"capped by partitions", Policy{MaxWorkers: 100}.WithDefaults(), known, func() Signals {
			s := steady(8, 1)
			s.Partitions = 12
			s.Backlog = 100_000_000
			return s
		}, 12, Up, false},
		{"low cpu scales down", p, known, func() Signals { return steady(20, 0.3) }, 7, Down, false},
		{"down never below min", p, known, func() Signals { return steady(4, 0.05) }, 2, Down, false},
		{"growing backlog blocks down", p, known, func() Signals {
			s := steady(20, 0.3)
			s.BacklogGrowth = 10
			return s
		}, 20, Hold, false},
		{"backlog time above 10s blocks down", p, known, func() Signals {
			s := steady(20, 0.3)
			s.Backlog = int64(s.Throughput * 11)
			return s
		}, 20, Hold, false},
		{"down window keeps the highest recommendation", p, History{PerWorker: 5000, Recs: []Recommendation{{At: t0.Add(-time.Minute), Workers: 20}}},
			func() Signals { return steady(20, 0.3) }, 20, Hold, false},
		{"stale kafka is no decision", p, known, func() Signals {
			s := steady(20, 0.1)
			s.KafkaAt = t0.Add(-5 * time.Minute)
			return s
		}, 20, Hold, true},
		{"missing cpu is no decision", p, known, func() Signals {
			s := steady(20, 0.1)
			s.HasCPU = false
			return s
		}, 20, Hold, true},
		{"no capacity estimate doubles", p, History{}, func() Signals {
			s := steady(5, 1)
			s.Throughput = 0
			s.CPU = 0.2 // stalled pods
			s.Backlog = 1_000_000
			return s
		}, 10, Up, false},
		{"idle long enough scales to zero", zero, History{PerWorker: 5000, IdleSince: t0.Add(-11 * time.Minute)}, func() Signals {
			s := steady(3, 0)
			s.Backlog = 0
			return s
		}, 0, Down, false},
		{"idle not long enough holds", zero, History{PerWorker: 5000, IdleSince: t0.Add(-5 * time.Minute)}, func() Signals {
			s := steady(1, 0)
			s.Backlog = 0
			return s
		}, 1, Hold, false},
		{"first record wakes a job at zero", zero, known, func() Signals {
			return Signals{At: t0, KafkaAt: t0, Workers: 0, Partitions: 8, Backlog: 1}
		}, 1, Up, false},
		{"zero stays zero while idle", zero, known, func() Signals {
			return Signals{At: t0, KafkaAt: t0, Workers: 0, Partitions: 8}
		}, 0, Hold, false},
		{"without scale to zero a job at zero goes to min", p, known, func() Signals {
			return Signals{At: t0, KafkaAt: t0, Workers: 0, Partitions: 8}
		}, 2, Up, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, _ := Decide(tt.policy, tt.history, tt.signals())
			if d.Desired != tt.want || d.Direction != tt.dir || d.NoDecision != tt.none {
				t.Errorf("Decide = desired %d %s (no decision %v), want %d %s (%v); reasons %q",
					d.Desired, d.Direction, d.NoDecision, tt.want, tt.dir, tt.none, d.Reasons)
			}
		})
	}
}

func randomSignals(r *rand.Rand, at time.Time, lo, hi int) Signals {
	w := lo + r.IntN(hi-lo+1)
	s := Signals{
		At: at, KafkaAt: at.Add(-time.Duration(r.IntN(30)) * time.Second), Workers: w,
		Partitions: []int{0, 4, 16, 64, 200}[r.IntN(5)],
		InputRate:  r.Float64() * 200000, Throughput: r.Float64() * 200000,
		Backlog:       []int64{0, 10, 1000, 1e6, 1e9}[r.IntN(5)],
		BacklogGrowth: []float64{-1000, 0, 0, 1, 5000}[r.IntN(5)],
		CPU:           r.Float64() * 1.2, HasCPU: r.IntN(10) > 0,
	}
	s.CPUAt = s.KafkaAt
	if r.IntN(8) == 0 {
		s.KafkaAt = at.Add(-10 * time.Minute) // stale
	}
	if r.IntN(8) == 0 {
		s.InputRate, s.Backlog, s.BacklogGrowth = 0, 0, 0
	}
	return s
}

func cloneHistory(h History) History {
	h.Recs = slices.Clone(h.Recs)
	return h
}

type propCase struct {
	p      Policy
	h      History
	s      Signals
	lo, hi int
}

// propCases makes n random policies, histories (built by running the policy
// over random signals) and signals of a job within its bounds.
func propCases(n int) []propCase {
	r := rand.New(rand.NewPCG(1, 2))
	cases := make([]propCase, 0, n)
	for range n {
		p := Policy{
			MinWorkers: r.IntN(4), MaxWorkers: 4 + r.IntN(60), ScaleToZero: r.IntN(3) == 0,
			DownWindow: time.Duration(r.IntN(10)) * time.Minute, UpWindow: time.Duration(r.IntN(2)) * time.Minute,
			IdleAfter: time.Duration(1+r.IntN(30)) * time.Minute,
		}.WithDefaults()
		var h History
		at := t0
		for range r.IntN(30) {
			at = at.Add(15 * time.Second)
			_, h = Decide(p, h, randomSignals(r, at, p.MinWorkers, p.MaxWorkers))
		}
		at = at.Add(15 * time.Second)
		s := randomSignals(r, at, p.MinWorkers, p.MaxWorkers)
		hi := p.MaxWorkers
		if s.Partitions > 0 {
			hi = min(hi, s.Partitions)
		}
		s.Workers = min(s.Workers, hi) // the properties are about a job within its bounds
		cases = append(cases, propCase{p: p, h: h, s: s, lo: min(p.MinWorkers, hi), hi: hi})
	}
	return cases
}

// TestPolicyProperties checks, over random signals and histories, that the
// policy never leaves its bounds, never scales down while the backlog grows,
// never decides on stale signals, is a pure function, and is idempotent on
// unchanged signals.
func TestPolicyProperties(t *testing.T) {
	cases := propCases(5000)
	for _, c := range cases {
		if err := c.p.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	type result struct {
		d Decision
		h History
	}
	results := make([]result, len(cases))
	for i, c := range cases {
		results[i].d, results[i].h = Decide(c.p, c.h, c.s)
	}
	props := []struct {
		name  string
		check func(c propCase, d Decision, h1 History) string
	}{
		{"never outside bounds", func(c propCase, d Decision, _ History) string {
			zeroOK := c.p.ScaleToZero && c.s.InputRate <= 0 && c.s.Backlog <= 0
			if d.Desired > c.hi || d.Desired < 0 || (d.Desired < c.lo && !(d.Desired == 0 && zeroOK)) {
				return fmt.Sprintf("desired %d outside [%d, %d]", d.Desired, c.lo, c.hi)
			}
			if d.Desired == 0 && c.s.Workers > 0 && !zeroOK {
				return "scaled to zero with input"
			}
			return ""
		}},
		{"never down while backlog grows", func(c propCase, d Decision, _ History) string {
			if c.s.BacklogGrowth > 0 && d.Desired < c.s.Workers {
				return fmt.Sprintf("down %d -> %d while backlog grows %.0f/s", c.s.Workers, d.Desired, c.s.BacklogGrowth)
			}
			return ""
		}},
		{"missing or stale signals never decide", func(c propCase, d Decision, _ History) string {
			stale := c.s.At.Sub(c.s.KafkaAt) > c.p.StaleAfter || (c.s.Workers > 0 && !c.s.HasCPU)
			if stale && (!d.NoDecision || d.Desired != c.s.Workers) {
				return fmt.Sprintf("decided %d -> %d on stale signals", c.s.Workers, d.Desired)
			}
			return ""
		}},
		{"pure", func(c propCase, d Decision, h1 History) string {
			before := cloneHistory(c.h)
			d2, h2 := Decide(c.p, c.h, c.s)
			if !reflect.DeepEqual(c.h, before) {
				return "Decide mutated its history"
			}
			if !reflect.DeepEqual(d, d2) || !reflect.DeepEqual(h1, h2) {
				return "same arguments, different results"
			}
			return ""
		}},
		{"idempotent on unchanged signals", func(c propCase, d Decision, h1 History) string {
			d2, _ := Decide(c.p, h1, c.s)
			if d2.Desired != d.Desired {
				return fmt.Sprintf("unchanged signals, desired %d then %d", d.Desired, d2.Desired)
			}
			return ""
		}},
	}
	for _, prop := range props {
		t.Run(prop.name, func(t *testing.T) {
			for i, c := range cases {
				if msg := prop.check(c, results[i].d, results[i].h); msg != "" {
					t.Fatalf("case %d: %s\npolicy %+v\nsignals %+v\nreasons %q", i, msg, c.p, c.s, results[i].d.Reasons)
				}
			}
		})
	}
}
