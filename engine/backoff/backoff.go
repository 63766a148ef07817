// Package backoff is sluice's one retry pause: exponential growth from a base
// to a cap, with jitter so that many tasks, pods or jobs failing together do
// not retry in lockstep against a destination that is just coming back.
//
// A Policy is a value, safe for concurrent use; it holds no state. Callers
// count their own attempts:
//
//	for attempt := 0; ; attempt++ {
//		if err := try(); err == nil || !retryable(err) {
//			return err
//		}
//		if !backoff.Sleep(ctx, p.Delay(attempt)) {
//			return ctx.Err()
//		}
//	}
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy is an exponential backoff with equal jitter: attempt n waits between
// half and all of min(Base·2ⁿ, Max), so a pause never collapses to zero (as
// full jitter can) yet retries spread over half the interval.
type Policy struct {
	Base time.Duration // the first pause's upper bound; 100 ms when 0
	Max  time.Duration // the longest pause; 30 s when 0
}

// Default is the policy of sinks and sources that name no other: 100 ms
// growing to 30 s.
var Default = Policy{Base: 100 * time.Millisecond, Max: 30 * time.Second}

// Ceiling is the pause before jitter for attempt (0-based): min(Base·2ⁿ, Max).
func (p Policy) Ceiling(attempt int) time.Duration {
	base, maxD := p.Base, p.Max
	if base <= 0 {
		base = 100 * time.Millisecond
	}
	if maxD <= 0 {
		maxD = 30 * time.Second
	}
	d := base
	for i := 0; i < attempt && d < maxD; i++ {
		d *= 2
	}
	return min(d, maxD)
}

// Delay is the jittered pause before retry number attempt (0-based).
func (p Policy) Delay(attempt int) time.Duration {
	return Jitter(p.Ceiling(attempt))
}

// Jitter returns a duration drawn uniformly from [d/2, d].
func Jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// Sleep waits d or until ctx is done; it reports whether the whole d passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
