package generate

import (
	"bytes"
	"testing"
)

func TestDeterministicAndRealistic(t *testing.T) {
	a, b := NewTraffic(1), NewTraffic(1)
	allow, hot := 0, 0
	const n = 20000
	var last int64
	for i := 0; i < n; i++ {
		x, y := a.AppendAvro(nil), b.AppendAvro(nil)
		if !bytes.Equal(x, y) {
			t.Fatalf("record %d differs between two generators of one seed", i)
		}
		r := a.Next()
		if r.Action == "ALLOW" {
			allow++
		}
		if r.App == a.apps[0] || r.App == a.apps[1] {
			hot++
		}
		if us := r.ReceiveTime.UnixMicro(); us < last {
			t.Fatalf("receive_time went back: %d < %d", us, last)
		} else {
			last = us
		}
		b.Next()
	}
	if share := float64(allow) / n; share < 0.87 || share > 0.93 {
		t.Errorf("ALLOW share %.3f, want about 0.9", share)
	}
	if share := float64(hot) / n; share < 0.4 {
		t.Errorf("the two hottest apps have %.3f of records, want a Zipf-like skew (> 0.4)", share)
	}
}

func BenchmarkAppendAvro(b *testing.B) {
	g := NewTraffic(1)
	var buf []byte
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf = g.AppendAvro(buf[:0])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	if len(buf) == 0 {
		b.Fatal("no output")
	}
}
