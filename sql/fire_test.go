package sql

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/engine"
)

// TestCompareReadyOrdersAsKeys: the windows of one end sorted by
// compareReady are in the order of starts and keys, for keys that share
// prefixes, hold zero bytes, are prefixes of one another and are longer
// than the 16 bytes held beside each window.
func TestCompareReadyOrdersAsKeys(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 1))
	alphabet := []byte{0, 1, 'a', 'b', 0xff}
	var keys []string
	for range 2000 {
		b := make([]byte, rng.IntN(24))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		keys = append(keys, string(b))
	}
	keys = append(keys, "", "\x00", "a", "a\x00", strings.Repeat("a", 16), strings.Repeat("a", 16)+"\x00", strings.Repeat("a", 17))
	var ready []readyWin
	for i, k := range keys {
		ready = append(ready, newReadyWin(newGroup([]byte(k), 0), &win{start: int64(i % 3), end: 10}))
	}
	slices.SortFunc(ready, compareReady)
	for i := 1; i < len(ready); i++ {
		x, y := ready[i-1], ready[i]
		if x.w.start > y.w.start || x.w.start == y.w.start && x.g.key > y.g.key {
			t.Fatalf("start %d key %q before start %d key %q", x.w.start, x.g.key, y.w.start, y.g.key)
		}
	}
}

// BenchmarkFire is the emission of every window of 200,000 groups at once,
// as a job whose lateness outlasts its input emits them at its end: one
// window per group, or five consecutive ones (five ends). It measures the
// sort into end, start and key order and one row per window; one op is
// one Fire.
func BenchmarkFire(b *testing.B) {
	for _, ends := range []int{1, 5} {
		b.Run(fmt.Sprintf("ends=%d", ends), func(b *testing.B) { benchFire(b, ends) })
	}
}

func benchFire(b *testing.B, ends int) {
	tr, err := CompileTransform(`SELECT window_start, src, COUNT(*) AS c, SUM(n) AS s
		FROM input GROUP BY TUMBLE(ts, '60 seconds'), src`, windowSchema(b))
	if err != nil {
		b.Fatal(err)
	}
	a := tr.(*Aggregation)
	const groups = 200_000
	rng := rand.New(rand.NewPCG(1, 2))
	srcs := make([]string, groups)
	for i := range srcs {
		srcs[i] = fmt.Sprintf("10.%d.%d.%d", rng.IntN(256), rng.IntN(256), rng.IntN(256))
	}
	in := engine.NewRow(3)
	b.ReportAllocs()
	rows := 0
	for b.Loop() {
		b.StopTimer()
		st := a.NewAggregate(0).(*aggregate)
		for e := range ends {
			for _, src := range srcs {
				in.Reset(3)
				in.SetInt(0, int64(e)*60e6+1e6)
				in.SetStr(1, src)
				in.SetInt(2, 1)
				if _, err := st.Add(in); err != nil {
					b.Fatal(err)
				}
			}
		}
		n, last := 0, int64(math.MinInt64)
		b.StartTimer()
		if err := st.Fire(true, func(out *engine.Row) error {
			n++
			if start := out.Int(0); start >= last {
				last = start
			} else {
				return fmt.Errorf("a window of %d after one of %d", start, last)
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if want := ends * st.groups.len(); n != want {
			b.Fatalf("%d rows, want %d", n, want)
		}
		rows += n
		b.StartTimer()
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "windows/s")
}
