package enginetest

import (
	"syscall"
	"time"
)

// ProcessCPU is the CPU time (user + system, every thread) this process has
// spent, for benchmarks that report cpu-ns/record: on a shared machine
// other processes stretch the wall time of a run, much less its CPU time.
// It is 0 when the kernel does not say.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
