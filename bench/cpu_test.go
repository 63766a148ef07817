package bench

import (
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine/enginetest"
)

// cpuClock measures the CPU time (user + system, every thread) this process
// spends, so that a benchmark whose wall time includes waiting on the broker
// process or on fsync can also say what it cost the cores; and the page
// faults it took, each of which is a trip into the kernel (memory the Go
// runtime had returned to the OS, touched again).
type cpuClock struct {
	start  time.Duration
	faults int64
}

func processCPU() time.Duration { return enginetest.ProcessCPU() }

// minorFaults is the count of page faults this process took that needed no
// I/O.
func minorFaults() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Minflt
}

func startCPU() cpuClock { return cpuClock{start: processCPU(), faults: minorFaults()} }

// report adds cpu-ns/record, the process's CPU time since start over n
// records, and page-faults/record.
func (c cpuClock) report(b *testing.B, n int) {
	b.ReportMetric(float64(processCPU()-c.start)/float64(n), "cpu-ns/record")
	b.ReportMetric(float64(minorFaults()-c.faults)/float64(n), "page-faults/record")
}
