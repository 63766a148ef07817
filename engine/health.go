package engine

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Readiness. The runtime is ready while it runs and nothing below holds; each
// fault is recorded under a key and cleared by whoever recorded it:
//
//   - source: what the Source reports through SetUnready (brokers
//     unreachable, a topic missing, authorization refused, fenced);
//   - sink: a writer of a task failed failingAfter times in a row, or once
//     with an error marked Permanent; cleared when it acknowledges again;
//   - decoder: a record waits for a dependency its decoder reported
//     unavailable (ErrUnavailable: a schema registry down);
//   - checkpoint: the last checkpoint could not be saved or committed;
//   - tasks: the member owned tasks and has owned none for orphanGrace (a
//     member fenced by a twin, or dropped from the group, looks like this).
//
// Reasons are redacted (Job.Redact) before they are recorded; a full disk
// (ENOSPC) is named as such.
type faultKey struct {
	kind string
	name string // the sink ("<pipeline>/<sink>"), when kind is faultSink
	task TaskID
}

const (
	faultSource     = "source"
	faultSink       = "sink"
	faultDecoder    = "decoder"
	faultCheckpoint = "checkpoint"
	faultTasks      = "tasks"
)

// orphanGrace is how long a member that owned tasks may own none before it
// says so on /readyz: a cooperative rebalance can take a member's last task
// a round before it hands it another.
const orphanGrace = 30 * time.Second

// warnEvery rate-limits the WARN logs of a failing sink or dependency.
const warnEvery = time.Minute

// setFault records (reason != "") or clears one fault.
func (r *Runtime) setFault(k faultKey, reason string) {
	r.faultMu.Lock()
	defer r.faultMu.Unlock()
	if reason == "" {
		delete(r.faults, k)
		return
	}
	r.faults[k] = reason
}

// faultText combines the recorded faults, one line per kind and subject,
// saying on how many tasks a sink or a decoder fails.
func (r *Runtime) faultText() string {
	r.faultMu.Lock()
	defer r.faultMu.Unlock()
	if len(r.faults) == 0 {
		return ""
	}
	type subject struct{ kind, name string }
	tasks := map[subject]int{}
	reason := map[subject]string{}
	for k, why := range r.faults {
		s := subject{k.kind, k.name}
		tasks[s]++
		if old, ok := reason[s]; !ok || why < old {
			reason[s] = why // the same text whichever task reported first
		}
	}
	var parts []string
	for s, n := range tasks {
		switch s.kind {
		case faultSink:
			parts = append(parts, fmt.Sprintf("sink %s failing on %d task(s): %s", s.name, n, reason[s]))
		case faultDecoder:
			parts = append(parts, fmt.Sprintf("%d task(s) waiting for an unavailable dependency: %s", n, reason[s]))
		default:
			parts = append(parts, reason[s])
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, "; ")
}

// warnDue reports whether a WARN about subject may be logged now (at most
// one per warnEvery).
func (r *Runtime) warnDue(subject string) bool {
	now := time.Now()
	r.faultMu.Lock()
	defer r.faultMu.Unlock()
	if last, ok := r.warned[subject]; ok && now.Sub(last) < warnEvery {
		return false
	}
	r.warned[subject] = now
	return true
}

// redact removes secrets from text that leaves the process.
func (r *Runtime) redact(s string) string { return r.job.Redact.Redact(s) }

// describe prefixes a failure's redacted text msg with what an operator
// needs first: that the disk is full, or that the failure is permanent.
func describe(kind string, err error, msg string) string {
	if errors.Is(err, syscall.ENOSPC) {
		msg = "disk full: " + msg
	}
	if kind == "permanent" {
		msg = "permanent: " + msg
	}
	return msg
}

// checkOrphan marks the member not ready once it has owned no task for
// orphanGrace after owning some.
func (r *Runtime) checkOrphan(now time.Time) {
	r.mu.Lock()
	n := len(r.tasks)
	r.mu.Unlock()
	r.faultMu.Lock()
	defer r.faultMu.Unlock()
	switch {
	case n > 0 || !r.owned:
		r.orphanSince = time.Time{}
		delete(r.faults, faultKey{kind: faultTasks})
	case r.orphanSince.IsZero():
		r.orphanSince = now
	case now.Sub(r.orphanSince) >= r.orphanGrace:
		r.faults[faultKey{kind: faultTasks}] = fmt.Sprintf("owns no tasks since %s after owning some: fenced by another member with the same name, or dropped from the group",
			r.orphanSince.UTC().Format(time.RFC3339))
	}
}
