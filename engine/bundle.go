package engine

import "time"

// bundleWait is the adaptive bundle rule (see minOpen) as a pure function of
// durations, so that tests can drive it tick by tick. It decides, for a task
// that has processed all its input and has a bundle open for age, whether
// the bundle closes now (0) or how long the task waits for more input before
// deciding again (it wakes sooner when input arrives). maxWait is the
// pipeline's bound, flushCost the moving average of the task's recent
// flushes, and waiting whether input arrived while the task processed the
// last of it: a task that is behind never finds its input idle, so its
// bundle grows (to MaxRecords or maxWait) instead of closing.
func bundleWait(age, maxWait, flushCost time.Duration, waiting bool) (wait time.Duration, closes bool) {
	if age >= maxWait {
		return 0, true
	}
	idleAfter := max(minOpen, flushRatio*flushCost)
	if age >= idleAfter {
		return 0, !waiting
	}
	return min(max(idleAfter-age, time.Millisecond), maxWait-age), false
}
