package encode

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine"
)

// formatTime is appendTime as it was written with time.Time.AppendFormat
// alone: the reference the hand-written paths must match byte for byte.
func formatTime(l engine.Logical, v int64) string {
	switch l {
	case engine.Date:
		return time.Unix(v*86400, 0).UTC().Format("2006-01-02")
	case engine.TimeMillis, engine.TimeMicros:
		return time.UnixMicro(v * l.MicrosPerUnit()).UTC().Format("15:04:05.000000")
	case engine.TimestampMillis, engine.TimestampMicros:
		return time.UnixMicro(v * l.MicrosPerUnit()).UTC().Format("2006-01-02T15:04:05.000000Z07:00")
	case engine.LocalTimestampMillis, engine.LocalTimestampMicros:
		return time.UnixMicro(v * l.MicrosPerUnit()).UTC().Format("2006-01-02T15:04:05.000000")
	}
	panic("not a time")
}

// TestAppendTimeMatchesFormat checks the hand-written date and clock
// formatting against time.Time.AppendFormat: every logical type, the edges
// of the years written by hand (0 and 9999) and of the epoch, leap days and
// centuries, and random values over the whole int64 range and near today.
func TestAppendTimeMatchesFormat(t *testing.T) {
	logicals := []engine.Logical{engine.Date, engine.TimeMillis, engine.TimeMicros, engine.TimestampMillis, engine.TimestampMicros, engine.LocalTimestampMillis, engine.LocalTimestampMicros}
	const day = 86400 * 1_000_000
	var values []int64
	for _, d := range []int64{minCivilDay, maxCivilDay, 0, -1, 1, 11016, 11017, 10957, 10956, -25567, 47541, 18321, 18322, 19782, 19783} {
		for _, off := range []int64{-2, -1, 0, 1, 2} {
			values = append(values, d+off, (d+off)*day, (d+off)*day-1, (d+off)*day+1, (d+off)*day/1000, (d+off)*day/1000-1)
		}
	}
	values = append(values, math.MinInt64, math.MaxInt64, math.MinInt64/1000, math.MaxInt64/1000, -1, 0, 1)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		values = append(values, int64(rng.Uint64()), rng.Int64N(200*365*day)-70*365*day, rng.Int64N(int64(maxCivilDay-minCivilDay))+minCivilDay)
	}
	for _, l := range logicals {
		for _, v := range values {
			want := formatTime(l, v)
			if got := string(appendTime([]byte("x"), l, v)); got != "x"+want {
				t.Fatalf("%v %d: %q, want %q", l, v, got[1:], want)
			}
		}
	}
}

func BenchmarkAppendTime(b *testing.B) {
	buf := make([]byte, 0, 64)
	v := time.Date(2024, 5, 1, 12, 34, 56, 789012000, time.UTC).UnixMicro()
	for i := range b.N {
		buf = appendTime(buf[:0], engine.TimestampMicros, v+int64(i))
	}
}
