package backoff

import (
	"context"
	"testing"
	"time"
)

func TestDelayBounds(t *testing.T) {
	p := Policy{Base: 100 * time.Millisecond, Max: 2 * time.Second}
	for _, tc := range []struct {
		attempt int
		ceiling time.Duration
	}{{0, 100 * time.Millisecond}, {1, 200 * time.Millisecond}, {4, 1600 * time.Millisecond}, {5, 2 * time.Second}, {60, 2 * time.Second}} {
		if got := p.Ceiling(tc.attempt); got != tc.ceiling {
			t.Errorf("Ceiling(%d) = %v, want %v", tc.attempt, got, tc.ceiling)
		}
		seen := map[time.Duration]bool{}
		for range 200 {
			d := p.Delay(tc.attempt)
			if d < tc.ceiling/2 || d > tc.ceiling {
				t.Fatalf("Delay(%d) = %v, outside [%v, %v]", tc.attempt, d, tc.ceiling/2, tc.ceiling)
			}
			seen[d] = true
		}
		if len(seen) < 50 {
			t.Errorf("Delay(%d) took only %d distinct values in 200 draws: not jittered", tc.attempt, len(seen))
		}
	}
}

func TestZeroPolicyUsesDefaults(t *testing.T) {
	var p Policy
	if got := p.Ceiling(0); got != Default.Base {
		t.Errorf("zero policy first ceiling %v, want %v", got, Default.Base)
	}
	if got := p.Ceiling(100); got != Default.Max {
		t.Errorf("zero policy cap %v, want %v", got, Default.Max)
	}
}

func TestSleepStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Fatal("Sleep on a cancelled context reported a full sleep")
	}
	if !Sleep(context.Background(), time.Millisecond) {
		t.Fatal("Sleep of 1ms did not complete")
	}
}
