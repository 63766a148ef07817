package engine

import (
	"testing"
	"time"
)

// TestBundleWait drives the adaptive bundle rule tick by tick, with no
// clock: each case is one decision of a task that has processed all its
// input.
func TestBundleWait(t *testing.T) {
	const ms = time.Millisecond
	tests := []struct {
		name                string
		age, maxWait, flush time.Duration
		waiting             bool
		wait                time.Duration
		closes              bool
	}{
		{name: "a new bundle of a quiet task waits minOpen", age: 0, maxWait: 10 * time.Second, wait: minOpen},
		{name: "then closes", age: minOpen, maxWait: 10 * time.Second, closes: true},
		{name: "input waiting at minOpen joins the bundle", age: minOpen, maxWait: 10 * time.Second, waiting: true},
		{name: "a slow sink keeps a bundle open ten flushes", age: 30 * ms, maxWait: 10 * time.Second, flush: 20 * ms, wait: 170 * ms},
		{name: "input waiting does not close it sooner", age: 30 * ms, maxWait: 10 * time.Second, flush: 20 * ms, waiting: true, wait: 170 * ms},
		{name: "ten flushes old and caught up: closes", age: 200 * ms, maxWait: 10 * time.Second, flush: 20 * ms, closes: true},
		{name: "ten flushes old and behind: grows", age: 200 * ms, maxWait: 10 * time.Second, flush: 20 * ms, waiting: true},
		{name: "max_wait bounds the wait", age: 40 * ms, maxWait: 50 * ms, flush: 20 * ms, wait: 10 * ms},
		{name: "max_wait closes a bundle that is behind", age: 50 * ms, maxWait: 50 * ms, flush: 20 * ms, waiting: true, closes: true},
		{name: "a wait is at least a millisecond", age: minOpen - time.Microsecond, maxWait: 10 * time.Second, wait: ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wait, closes := bundleWait(tt.age, tt.maxWait, tt.flush, tt.waiting)
			if wait != tt.wait || closes != tt.closes {
				t.Errorf("bundleWait(%v, %v, %v, %v) = %v, %v; want %v, %v", tt.age, tt.maxWait, tt.flush, tt.waiting, wait, closes, tt.wait, tt.closes)
			}
		})
	}
}
