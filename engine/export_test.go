package engine_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/engine"
)

// Windows a shuffled aggregation drops are left out of the output, as dead
// letters are: the default /metrics set keeps their counter, summed per
// job, and drops what grows with the job (per-sink series).
func TestExportedKeepsLateWindowsPerJob(t *testing.T) {
	reg := prometheus.NewRegistry()
	late := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_shuffle_late_windows_total"}, []string{"job", "pipeline"})
	rows := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_sink_rows_total"}, []string{"job", "pipeline", "sink"})
	reg.MustRegister(late, rows)
	late.WithLabelValues("j", "a.merge").Add(2)
	late.WithLabelValues("j", "b.merge").Add(3)
	rows.WithLabelValues("j", "a", "out").Add(7)
	fams, err := engine.Exported(reg, false).Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(fams) != 1 || fams[0].GetName() != "sluice_shuffle_late_windows_total" {
		t.Fatalf("exported %v; want sluice_shuffle_late_windows_total alone", fams)
	}
	ms := fams[0].GetMetric()
	if len(ms) != 1 || len(ms[0].GetLabel()) != 1 || ms[0].GetLabel()[0].GetName() != "job" || ms[0].GetCounter().GetValue() != 5 {
		t.Errorf("exported %v; want one series {job=\"j\"} 5", ms)
	}
}
