package app

import (
	"testing"
	"time"
)

// TestShuffleExact: a windowed COUNT and SUM by src_ip, whose records are
// written round-robin over 4 partitions so that every key is on every
// partition, run by the sluice binary into a BigQuery committed-mode
// table. With aggregation: shuffle the source tasks pre-aggregate, send
// partials through the repartition topic sluice creates, and its tasks
// merge: the table holds exactly one row per key and window, equal to
// the count and sum computed from the produced records. The same job
// with aggregation: per_partition emits a row per partition holding the
// key (so the shuffle is what makes the result exact).
func TestShuffleExact(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"shuffle", "per_partition"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			r := newWindowRunMode(t, mode, true)
			w := r.c.start("w0")
			for range 4 {
				r.produce(2500)
			}
			r.waitTable(90 * time.Second)
			r.c.drain(w)
			if mode == "shuffle" {
				r.exact(w.logs.String())
				t.Logf("%d records, %d windows: every window once, every count and sum exact", r.next, len(r.want))
				return
			}
			got := r.table()
			split := 0
			for wk := range r.want {
				if len(got[wk]) > 1 {
					split++
				}
			}
			if split == 0 {
				t.Fatalf("per_partition: no key and window has more than one row (%d windows): the test does not spread keys over partitions", len(r.want))
			}
			t.Logf("per_partition: %d of %d windows split into several rows", split, len(r.want))
		})
	}
}
