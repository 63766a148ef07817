package bench

import (
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine/enginetest"
)

// cpuClock measures the CPU time (user + system, every thread) this process
// spends, so that a benchmark whose wall time includes waiting on the broker
// process or on fsync can also say what it cost the cores.
type cpuClock struct{ start time.Duration }

func processCPU() time.Duration { return enginetest.ProcessCPU() }

func startCPU() cpuClock { return cpuClock{start: processCPU()} }

// report adds cpu-ns/record: the process's CPU time since start over n
// records.
func (c cpuClock) report(b *testing.B, n int) {
	b.ReportMetric(float64(processCPU()-c.start)/float64(n), "cpu-ns/record")
}
