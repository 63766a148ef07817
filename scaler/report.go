package scaler

import (
	"fmt"
	"io"
	"math"
	"time"
)

// ReportRow is one line of the simulator's report.
type ReportRow struct {
	Result SimResult
	// CostRatio is worker-minutes over the oracle's on the same trace.
	CostRatio float64
}

// RunReport simulates every trace with the sluice policy p (bounds and
// scale-to-zero taken from job and trace), the KEDA-style policy, a static
// peak-provisioned job and the oracle, all on the same seeded world.
func RunReport(job SimJob, p Policy, seed uint64) []ReportRow {
	var rows []ReportRow
	for _, tr := range Traces() {
		oracle := Oracle(job, tr, seed)
		sp := p
		sp.MinWorkers, sp.MaxWorkers, sp.ScaleToZero = job.MinWorkers, job.MaxWorkers, tr.ScaleToZero
		keda := &KEDAController{
			// 5 s of one worker's capacity at 80 %: the committed lag of a
			// job that keeps up is about half a checkpoint interval of input.
			LagThreshold: 0.8 * 5 * job.PerWorker,
			MinReplicas:  job.MinWorkers, MaxReplicas: job.MaxWorkers,
			Partitions: job.Partitions, CooldownPeriod: 5 * time.Minute,
		}
		if tr.ScaleToZero {
			keda.MinReplicas = 0
		}
		for _, c := range []Controller{NewSluiceController(sp, time.Minute), keda, StaticController{Workers: PeakWorkers(job, tr)}} {
			r := Simulate(job, tr, seed, c)
			rows = append(rows, ReportRow{Result: r, CostRatio: r.WorkerMinutes / oracle.WorkerMinutes})
		}
		rows = append(rows, ReportRow{Result: oracle, CostRatio: 1})
	}
	return rows
}

// WriteReportTable writes rows as a Markdown table.
func WriteReportTable(w io.Writer, rows []ReportRow) error {
	if _, err := fmt.Fprintln(w, "| trace | policy | SLA minutes | worker-minutes | × oracle | rescales | worst backlog time |"); err != nil {
		return fmt.Errorf("scaler: write report: %w", err)
	}
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		worst := "∞"
		if !math.IsInf(r.Result.MaxBacklogTimeS, 1) {
			worst = fmt.Sprintf("%.0f s", r.Result.MaxBacklogTimeS)
		}
		if _, err := fmt.Fprintf(w, "| %s | %s | %.2f %% | %.0f | %.2f | %d | %s |\n",
			r.Result.Trace, r.Result.Policy, 100*r.Result.SLA(), r.Result.WorkerMinutes,
			r.CostRatio, r.Result.Rescales, worst); err != nil {
			return fmt.Errorf("scaler: write report: %w", err)
		}
	}
	return nil
}
