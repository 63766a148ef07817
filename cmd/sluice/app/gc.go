package app

import (
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/engine/config"
)

// DefaultGCPercent is a worker's garbage-collection target (GOGC) when its
// job does not set memory.gc_percent: the heap grows to three times what is
// live before a collection, where Go's default lets it reach twice.
//
// A worker's live heap is small beside its pod: docs/job-file.md bounds it
// by the job's memory settings (tens of MiB for a stateless job), and a
// vCPU comes with 4 GiB. A job reading at full speed allocates a fetch
// response every few milliseconds, so at Go's default it collects every few
// fetches, marking the same records each time: at GOMAXPROCS=1,
// filter_to_jsonl spent 5-20 % less CPU per record at 200. Above 200 the
// larger heap spreads the fetch buffers over more memory than the caches
// hold, and the gain shrinks again (docs/job-file.md, Memory).
const DefaultGCPercent = 200

// memoryLimitShare is the share of its container's memory limit that a
// worker sets as its soft memory limit (GOMEMLIMIT) when the environment
// sets none: as the heap nears it the collector works harder, rather than
// the kernel killing the pod. The rest is for what the Go runtime does not
// count, such as the binary's own pages.
const memoryLimitShare = 0.9

// cgroupRoot is where the process's cgroup is mounted.
const cgroupRoot = "/sys/fs/cgroup"

// Tuning is what TuneMemory set; a zero field was left as the environment
// (GOGC, GOMEMLIMIT) or Go's default had it.
type Tuning struct {
	GCPercent   int
	MemoryLimit int64 // bytes
}

// TuneMemory sets the process's garbage collector for running cj: the
// collection target to memory.gc_percent (DefaultGCPercent) unless GOGC is
// set, and the soft memory limit to memoryLimitShare of the container's
// memory limit unless GOMEMLIMIT is set or the container has none. It
// returns what it set and a function that puts back what was there before
// (the benchmarks run jobs one after another in one process). sluice run
// and sluice dev call it once, before the job starts.
func TuneMemory(cj *config.Job) (Tuning, func()) {
	return tuneMemory(cj, os.Getenv, cgroupRoot)
}

func tuneMemory(cj *config.Job, getenv func(string) string, cgroup string) (Tuning, func()) {
	var t Tuning
	var undo []func()
	if getenv("GOGC") == "" {
		t.GCPercent = cj.Memory.GCPercent
		if t.GCPercent == 0 {
			t.GCPercent = DefaultGCPercent
		}
		prev := debug.SetGCPercent(t.GCPercent)
		undo = append(undo, func() { debug.SetGCPercent(prev) })
	}
	if getenv("GOMEMLIMIT") == "" {
		if limit := cgroupMemoryLimit(cgroup); limit > 0 {
			t.MemoryLimit = int64(float64(limit) * memoryLimitShare)
			prev := debug.SetMemoryLimit(t.MemoryLimit)
			undo = append(undo, func() { debug.SetMemoryLimit(prev) })
		}
	}
	return t, func() {
		for _, f := range undo {
			f()
		}
	}
}

// cgroupMemoryLimit is the memory limit of the cgroup mounted at root
// (cgroup v2's memory.max, or v1's memory/memory.limit_in_bytes), or 0 when
// it has none or cannot be read.
func cgroupMemoryLimit(root string) int64 {
	for _, name := range []string{"memory.max", "memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		// v2 writes "max" for no limit, v1 a number near 2^63.
		if err != nil || n <= 0 || n >= 1<<60 {
			return 0
		}
		return n
	}
	return 0
}

// tuneProcess is TuneMemory for the life of the process, logged.
func tuneProcess(log *slog.Logger, cj *config.Job) {
	t, _ := TuneMemory(cj)
	log.Info("garbage collector tuned", "gc_percent", t.GCPercent, "memory_limit_bytes", t.MemoryLimit)
}
