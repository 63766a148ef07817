package engine

import (
	"strings"
	"testing"
	"time"
)

// A member that owned tasks and has owned none for the grace period (fenced
// by a twin with its name, or dropped from the group) says so on readiness;
// one that never owned a task, or gets one again, does not.
func TestReadinessOfAMemberWithoutTasks(t *testing.T) {
	r := &Runtime{job: &Job{}, tasks: map[TaskID]*task{}, faults: map[faultKey]string{}, warned: map[string]time.Time{}, orphanGrace: time.Minute}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r.checkOrphan(now)
	r.checkOrphan(now.Add(time.Hour))
	if why := r.faultText(); why != "" {
		t.Fatalf("a member that never owned a task is not ready: %q", why)
	}
	r.owned = true // it owned tasks, then they were taken away
	r.checkOrphan(now)
	r.checkOrphan(now.Add(30 * time.Second))
	if why := r.faultText(); why != "" {
		t.Fatalf("not ready within the grace period: %q", why)
	}
	r.checkOrphan(now.Add(2 * time.Minute))
	if why := r.faultText(); !strings.Contains(why, "owns no tasks") || !strings.Contains(why, "fenced") {
		t.Fatalf("readiness %q after two minutes without tasks; want it to say the member owns none", why)
	}
	r.tasks[TaskID{Topic: "t"}] = &task{}
	r.checkOrphan(now.Add(3 * time.Minute))
	if why := r.faultText(); why != "" {
		t.Fatalf("still not ready (%q) with a task again", why)
	}
}
