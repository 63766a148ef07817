package app

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"

	"github.com/sluicehq/sluice/engine/config"
)

func TestCgroupMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  int64
	}{
		{"v2 limit", map[string]string{"memory.max": "4294967296\n"}, 4 << 30},
		{"v2 none", map[string]string{"memory.max": "max\n"}, 0},
		{"v1 limit", map[string]string{"memory/memory.limit_in_bytes": "1073741824\n"}, 1 << 30},
		{"v1 none", map[string]string{"memory/memory.limit_in_bytes": "9223372036854771712\n"}, 0},
		{"no cgroup", nil, 0},
		{"garbage", map[string]string{"memory.max": "lots\n"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for name, data := range tc.files {
				p := filepath.Join(root, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if got := cgroupMemoryLimit(root); got != tc.want {
				t.Errorf("cgroupMemoryLimit = %d, want %d", got, tc.want)
			}
		})
	}
}

// TuneMemory sets the job's collection target and a soft limit below the
// container's, leaves alone what the environment sets, and puts back what
// was there.
func TestTuneMemory(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "memory.max"), []byte("1000000000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	noEnv := func(string) string { return "" }
	gcPercent := func() int { p := debug.SetGCPercent(100); debug.SetGCPercent(p); return p }
	beforeGC, beforeLimit := gcPercent(), debug.SetMemoryLimit(-1)

	for _, tc := range []struct {
		name      string
		job       config.Job
		env       func(string) string
		want      Tuning
		gcPercent int
	}{
		{"defaults", config.Job{}, noEnv, Tuning{GCPercent: DefaultGCPercent, MemoryLimit: 900000000}, DefaultGCPercent},
		{"job sets it", config.Job{Memory: config.Memory{GCPercent: 150}}, noEnv, Tuning{GCPercent: 150, MemoryLimit: 900000000}, 150},
		{"environment wins", config.Job{Memory: config.Memory{GCPercent: 150}}, func(k string) string {
			return map[string]string{"GOGC": "50", "GOMEMLIMIT": "1GiB"}[k]
		}, Tuning{}, beforeGC},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, restore := tuneMemory(&tc.job, tc.env, root)
			if got != tc.want {
				t.Errorf("tuneMemory = %+v, want %+v", got, tc.want)
			}
			if p := gcPercent(); p != tc.gcPercent {
				t.Errorf("GC percent %d, want %d", p, tc.gcPercent)
			}
			if l := debug.SetMemoryLimit(-1); tc.want.MemoryLimit != 0 && l != tc.want.MemoryLimit {
				t.Errorf("memory limit %d, want %d", l, tc.want.MemoryLimit)
			}
			restore()
			if p, l := gcPercent(), debug.SetMemoryLimit(-1); p != beforeGC || l != beforeLimit {
				t.Errorf("after restore: GC percent %d, limit %d; want %d, %d", p, l, beforeGC, beforeLimit)
			}
		})
	}
}
