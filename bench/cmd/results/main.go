// Command results runs sluice's benchmark suite and writes its figures as a
// markdown report (bench/RESULTS.md under `make bench`).
//
// It builds the bench package's test binary (go test -c) and runs it, each
// time in its own process:
//
//   - BenchmarkEndToEnd and BenchmarkStage with -cpu 1,N (N = all cores), one
//     op per record, -benchtime=<records>x: the per-core figure and the
//     scaling side by side in one run, as the machine is shared and noisy;
//     each stateless end-to-end case under both brokers (broker=canned, the
//     one whose fetches cost a memcpy, and broker=log, kfake's log, whose
//     fetches cost more CPU than sluice's consuming), the stateful
//     tumble_count under the log broker;
//   - BenchmarkStartup with -cpu 1 and -benchtime=1x, alone, so that its peak
//     RSS is its own;
//   - filter_to_jsonl under the canned broker at -cpu 1 once more with a CPU
//     profile of the job's timed run alone (-e2e.cpuprofile; kept with -cpuprofile, and a heap
//     profile of the process with -memprofile), apart so that profiling does
//     not skew the table; its pprof -top goes into the report.
//
// With -before REV it also checks REV out into a temporary git worktree,
// builds that revision's test binary, and runs the end-to-end cases with
// both binaries alternately, case by case and GOMAXPROCS by GOMAXPROCS
// (-rounds times each, the order swapped every round), so that the
// report's before and after figures come from one sitting on the same
// machine and its load drifts into neither side alone.
//
// Usage:
//
//	go run ./bench/cmd/results [-out bench/RESULTS.md] [-records 1000000]
//	    [-before REV [-rounds 1]] [-cpuprofile cpu.out] [-memprofile mem.out]
//	    [-broker process|inproc]
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// reference is the reference deployment's throughput per vCPU.
const reference = 3000

// goal is the project's per-core goal for filter_to_jsonl: 500x the
// reference.
const goal = 500 * reference

// e2eCases are BenchmarkEndToEnd's cases, in its order: -before runs them
// one by one.
var e2eCases = []string{"filter_to_jsonl", "tumble_count", "project_to_avro", "many_pipelines", "two_writer_schemas"}

// brokers are the brokers BenchmarkEndToEnd runs case c under, its
// sub-benchmarks broker=canned and broker=log: stateful cases need the
// distinct event times of the log.
func brokers(c string) []string {
	if c == "tumble_count" {
		return []string{"log"}
	}
	return []string{"canned", "log"}
}

func main() {
	var o options
	flag.StringVar(&o.out, "out", "bench/RESULTS.md", "the markdown report to write")
	flag.IntVar(&o.records, "records", 1_000_000, "records per benchmark run (-benchtime=<records>x)")
	flag.StringVar(&o.before, "before", "", "also run the end-to-end cases at this git revision (a commit, branch or tag), alternating with the working tree's, and report both")
	flag.IntVar(&o.rounds, "rounds", 1, "with -before: runs of each end-to-end case per revision; the report takes each side's median")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "keep the CPU profile of filter_to_jsonl's job at GOMAXPROCS=1 (always taken for the report) here")
	flag.StringVar(&o.memProfile, "memprofile", "", "also write a heap profile of the filter_to_jsonl run at GOMAXPROCS=1 here")
	flag.StringVar(&o.broker, "broker", "process", "where kfake runs: process (its own process, so -cpu counts sluice alone) or inproc")
	flag.Parse()
	if o.rounds < 1 {
		fmt.Fprintln(os.Stderr, "results: -rounds must be at least 1")
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "results:", err)
		os.Exit(1)
	}
}

type options struct {
	out, before, cpuProfile, memProfile, broker string
	records, rounds                             int
}

// binary is a built bench test binary and the bench directory it runs in
// (its tests read ../testdata).
type binary struct {
	path, dir string
}

// run builds the binaries, runs every benchmark and writes the report. A
// failing benchmark (a wrong answer, a job that did not end) still leaves a
// report, with the failure in it; then run returns the error.
func run(o options) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	cores := runtime.NumCPU()
	cpus := "1"
	procs := []int{1}
	if cores > 1 {
		cpus = fmt.Sprintf("1,%d", cores)
		procs = append(procs, cores)
	}
	started := time.Now()
	tmp, err := os.MkdirTemp("", "sluice-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	after := binary{path: filepath.Join(tmp, "bench.test"), dir: filepath.Join(root, "bench")}
	if _, err := goCmd(root, []string{"test", "-c", "-o", after.path, "./bench/"}); err != nil {
		return err
	}
	var before binary
	var beforeRev string
	if o.before != "" {
		var cleanup func()
		before, beforeRev, cleanup, err = buildRevision(root, tmp, o.before)
		if err != nil {
			return err
		}
		defer cleanup()
	}

	benchArgs := func(bench, benchtime, cpu string, extra ...string) []string {
		args := []string{"-test.run", "^$", "-test.bench", bench, "-test.benchmem", "-test.benchtime", benchtime,
			"-test.cpu", cpu, "-test.timeout", "60m"}
		return append(append(args, extra...), "-e2e.broker="+o.broker)
	}
	records := fmt.Sprintf("%dx", o.records)
	var commands []string
	var suiteOut, beforeOut []byte
	var runErr error
	if o.before == "" {
		args := benchArgs("^Benchmark(EndToEnd|Stage)$", records, cpus)
		commands = append(commands, "bench.test "+strings.Join(quote(args), " "))
		suiteOut, runErr = after.run(args)
	} else {
		// Case by case and GOMAXPROCS by GOMAXPROCS, each revision's
		// binary in turn, the first of each pair alternating.
		for _, c := range e2eCases {
			for _, p := range procs {
				args := benchArgs("^BenchmarkEndToEnd$/^"+c+"$", records, strconv.Itoa(p))
				for r := range o.rounds {
					order := []bool{false, true} // is before
					if r%2 == 1 {
						order = []bool{true, false}
					}
					for _, isBefore := range order {
						if isBefore {
							out, err := before.run(args)
							beforeOut = append(beforeOut, out...)
							runErr = errors.Join(runErr, err)
						} else {
							out, err := after.run(args)
							suiteOut = append(suiteOut, out...)
							runErr = errors.Join(runErr, err)
						}
					}
				}
			}
		}
		commands = append(commands, fmt.Sprintf("for each case C and GOMAXPROCS P, %d round(s), alternating the two revisions' binaries: bench.test %s",
			o.rounds, strings.Join(quote(benchArgs("^BenchmarkEndToEnd$/^C$", records, "P")), " ")))
		args := benchArgs("^BenchmarkStage$", records, cpus)
		commands = append(commands, "bench.test "+strings.Join(quote(args), " "))
		out, err := after.run(args)
		suiteOut = append(suiteOut, out...)
		runErr = errors.Join(runErr, err)
	}
	startup := benchArgs("^BenchmarkStartup$", "1x", "1")
	commands = append(commands, "bench.test "+strings.Join(quote(startup), " "))
	startupOut, err := after.run(startup)
	runErr = errors.Join(runErr, err)

	// The profile of the top case goes into the report; -cpuprofile keeps
	// it. The job's profile is written beside the name given, with the
	// case's name before the extension.
	var profTop string
	{
		base := filepath.Join(tmp, "cpu.out")
		prof := benchArgs("^BenchmarkEndToEnd$/^filter_to_jsonl$/^broker=canned$", records, "1", "-e2e.cpuprofile", base)
		if o.memProfile != "" {
			abs, _ := filepath.Abs(o.memProfile)
			prof = append(prof, "-test.memprofile", abs)
		}
		shown := slices.Clone(prof)
		shown[slices.Index(shown, base)] = "cpu.out" // writes cpu.filter_to_jsonl.canned.out
		commands = append(commands, "bench.test "+strings.Join(quote(shown), " "))
		if _, err := after.run(prof); err != nil {
			runErr = errors.Join(runErr, err)
		}
		cpuOut := filepath.Join(tmp, "cpu.filter_to_jsonl.canned.out")
		if o.cpuProfile != "" {
			if b, err := os.ReadFile(cpuOut); err == nil {
				abs, _ := filepath.Abs(o.cpuProfile)
				if err := os.WriteFile(abs, b, 0o644); err != nil {
					runErr = errors.Join(runErr, err)
				}
			}
		}
		for _, args := range [][]string{{"-top"}, {"-top", "-cum"}} {
			args = append([]string{"tool", "pprof", "-nodecount=40"}, args...)
			top, err := exec.Command("go", append(args, after.path, cpuOut)...).Output()
			if err != nil {
				runErr = errors.Join(runErr, fmt.Errorf("pprof: %w", err))
			}
			profTop += "$ go " + strings.Join(quote(args), " ") + " bench.test cpu.filter_to_jsonl.canned.out\n" + trimPprof(string(top)) + "\n"
		}
	}
	rs := parse(suiteOut)
	rs = append(rs, parse(startupOut)...)
	if len(rs) == 0 {
		return errors.Join(runErr, errors.New("no benchmark results in the output"))
	}
	var md bytes.Buffer
	report(&md, rs, reportInfo{
		cores: cores, records: o.records, broker: o.broker, date: started.UTC(),
		goVersion: goVersion(root), cpu: cpuModel(),
		commands:  commands,
		raw:       string(suiteOut) + string(startupOut),
		profile:   profTop,
		before:    parse(beforeOut),
		beforeRev: beforeRev,
		afterRev:  describeTree(root),
		rawBefore: string(beforeOut),
		elapsed:   time.Since(started),
	})
	out := o.out
	if !filepath.IsAbs(out) {
		out = filepath.Join(root, out)
	}
	if err := os.WriteFile(out, md.Bytes(), 0o644); err != nil {
		return err
	}
	return runErr
}

// buildRevision checks rev out into a detached git worktree under tmp and
// builds its bench test binary. cleanup removes the worktree.
func buildRevision(root, tmp, rev string) (binary, string, func(), error) {
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short=12", rev+"^{commit}").Output()
	if err != nil {
		return binary{}, "", nil, fmt.Errorf("-before %s: not a commit of this repository: %w", rev, err)
	}
	commit := strings.TrimSpace(string(out))
	dir := filepath.Join(tmp, "before")
	if out, err := exec.Command("git", "-C", root, "worktree", "add", "--detach", dir, commit).CombinedOutput(); err != nil {
		return binary{}, "", nil, fmt.Errorf("git worktree add %s: %v: %s", commit, err, out)
	}
	cleanup := func() {
		exec.Command("git", "-C", root, "worktree", "remove", "--force", dir).Run()
	}
	b := binary{path: filepath.Join(tmp, "before.test"), dir: filepath.Join(dir, "bench")}
	if _, err := goCmd(dir, []string{"test", "-c", "-o", b.path, "./bench/"}); err != nil {
		cleanup()
		return binary{}, "", nil, err
	}
	return b, fmt.Sprintf("%s (%s)", rev, commit), cleanup, nil
}

// describeTree names the working tree's commit, marked when it has
// uncommitted changes.
func describeTree(root string) string {
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "the working tree"
	}
	rev := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		rev += " with uncommitted changes"
	}
	return rev
}

// run runs the test binary with args in its bench directory, echoing its
// output to stderr, and returns the output.
func (b binary) run(args []string) ([]byte, error) {
	fmt.Fprintln(os.Stderr, "+", b.path, strings.Join(quote(args), " "))
	cmd := exec.Command(b.path, args...)
	cmd.Dir = b.dir
	var buf bytes.Buffer
	cmd.Stdout = io.MultiWriter(&buf, os.Stderr)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return buf.Bytes(), fmt.Errorf("%s %s: %w", filepath.Base(b.path), strings.Join(args, " "), err)
	}
	return buf.Bytes(), nil
}

// goCmd runs go with args in dir, echoing its output to stderr, and returns
// the output.
func goCmd(dir string, args []string) ([]byte, error) {
	fmt.Fprintln(os.Stderr, "+ go", strings.Join(quote(args), " "))
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	var buf bytes.Buffer
	cmd.Stdout = io.MultiWriter(&buf, os.Stderr)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return buf.Bytes(), fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	return buf.Bytes(), nil
}

func quote(args []string) []string {
	q := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, "^$|()* ") {
			a = "'" + a + "'"
		}
		q[i] = a
	}
	return q
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the module (no go.mod above the working directory)")
		}
		dir = parent
	}
}

func goVersion(dir string) string {
	cmd := exec.Command("go", "env", "GOVERSION")
	cmd.Dir = dir
	b, err := cmd.Output()
	if err != nil {
		return runtime.Version()
	}
	return strings.TrimSpace(string(b))
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// result is one line of `go test -bench` output.
type result struct {
	name  string // without the -N suffix
	procs int
	n     int
	m     map[string]float64 // unit → value
}

func parse(out []byte) []result {
	var rs []result
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		n, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		r := result{name: f[0], procs: 1, n: n, m: map[string]float64{}}
		if i := strings.LastIndex(r.name, "-"); i > 0 {
			if p, err := strconv.Atoi(r.name[i+1:]); err == nil {
				r.name, r.procs = r.name[:i], p
			}
		}
		for i := 2; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				r.m[f[i+1]] = v
			}
		}
		rs = append(rs, r)
	}
	return rs
}

type reportInfo struct {
	cores, records int
	broker         string
	date           time.Time
	goVersion, cpu string
	commands       []string
	raw            string
	profile        string // pprof -top of filter_to_jsonl's job at GOMAXPROCS=1
	// With -before: the end-to-end results of the before revision, its
	// name, the after side's, that revision's raw output, and how long the
	// whole sitting took.
	before              []result
	beforeRev, afterRev string
	rawBefore           string
	elapsed             time.Duration
}

// findE2E returns BenchmarkEndToEnd's result of case c under broker br at
// procs (see find). A revision older than the broker sub-benchmarks named
// its cases alone, and served them from the log.
func findE2E(rs []result, c, br string, procs int) (result, bool) {
	if r, ok := find(rs, "BenchmarkEndToEnd/"+c+"/broker="+br, procs); ok || br != "log" {
		return r, ok
	}
	return find(rs, "BenchmarkEndToEnd/"+c, procs)
}

// find returns the result of name at procs; of several (-rounds), the one
// with the median records/s.
func find(rs []result, name string, procs int) (result, bool) {
	var all []result
	for _, r := range rs {
		if r.name == name && r.procs == procs {
			all = append(all, r)
		}
	}
	if len(all) == 0 {
		return result{}, false
	}
	slices.SortStableFunc(all, func(a, b result) int {
		switch {
		case a.m["records/s"] < b.m["records/s"]:
			return -1
		case a.m["records/s"] > b.m["records/s"]:
			return 1
		}
		return 0
	})
	return all[(len(all)-1)/2], true
}

func report(w io.Writer, rs []result, in reportInfo) {
	fmt.Fprintf(w, "# sluice benchmark results\n\n")
	fmt.Fprintf(w, "Written by `make bench` (`go run ./bench/cmd/results`; `make bench BEFORE=rev` adds the before columns); do not edit by hand. Each command runs the bench package's test binary (`go test -c ./bench/`) in bench/.\n\n")
	fmt.Fprintf(w, "- machine: %s, %d cores; %s/%s, %s\n", in.cpu, in.cores, runtime.GOOS, runtime.GOARCH, in.goVersion)
	fmt.Fprintf(w, "- date: %s\n", in.date.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "- records per run: %d (one op = one record); kfake brokers (canned and log, see End to end): %s\n", in.records, brokerNote(in.broker))
	fmt.Fprintf(w, "- commands:\n")
	for _, c := range in.commands {
		fmt.Fprintf(w, "  - `%s`\n", c)
	}
	if in.beforeRev != "" {
		fmt.Fprintf(w, "- before: %s; after: %s. The end-to-end cases ran with the two revisions' test binaries alternately, case by case and GOMAXPROCS by GOMAXPROCS; the sitting took %s.\n",
			in.beforeRev, in.afterRev, in.elapsed.Round(time.Minute))
	}
	fmt.Fprintf(w, "\nThe machine is shared: absolute figures move by tens of percent from run to run; figures in one table come from one run, side by side.\n")

	fmt.Fprintf(w, "\n## End to end (BenchmarkEndToEnd)\n\n")
	fmt.Fprintf(w, "Kafka (kfake) → franz-go group consumer → Avro decode → SQL → file sink, until every record is flushed, checkpointed and committed; each run checks the sink's rows (count and a checksum) and the committed offsets. The timer covers Build, the group join, the run and the final checkpoint.\n\n")
	fmt.Fprintf(w, "The broker column says what served the records. **canned**: kfake answering every fetch with copies of one ~1 MB record batch of the case's own generated traffic (thousands of distinct records; both writer schemas for two_writer_schemas) and listing end offsets that spread the run's records over the partitions, so the job reads exactly that many and its output is checked against the batch's tally. Serving a record costs that broker a memcpy or two and a socket write, as a production broker serving fetches from the page cache costs almost no CPU per record: these rows measure sluice. **log**: the records produced into kfake's log beforehand and served from it; kfake's fetch path is one serial loop that spends more CPU per record (broker CPU ns/record) than sluice spends consuming, so at GOMAXPROCS=1 these rows measure the test broker's pace, not sluice's. The stateful tumble_count needs a stream's distinct event times and runs under the log broker only.\n\n")
	withBefore := len(in.before) > 0
	head := "| case | broker | GOMAXPROCS | records/s |"
	rule := "|---|---|---:|---:|"
	if withBefore {
		head += " records/s before | after ÷ before | records per CPU-second before |"
		rule += "---:|---:|---:|"
	}
	head += " records/s per core | × reference (3,000/vCPU) | records per CPU-second | broker CPU ns/record | allocs/record | B/record | peak heap MiB | peak RSS MiB | MB/s | startup ms |\n"
	rule += "---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
	fmt.Fprint(w, head+rule)
	cases := []string{"filter_to_jsonl", "project_to_avro", "two_writer_schemas", "many_pipelines", "tumble_count"}
	procs := []int{1}
	if in.cores > 1 {
		procs = append(procs, in.cores)
	}
	var goalLine string
	for _, c := range cases {
		for _, br := range brokers(c) {
			for _, p := range procs {
				r, ok := findE2E(rs, c, br, p)
				if !ok {
					fmt.Fprintf(w, "| %s | %s | %d | failed or missing (see Failures) |%s  |  |  |  |  |  |  |  |  |  |\n", c, br, p, strings.Repeat("  |", 3*btoi(withBefore)))
					continue
				}
				rps := r.m["records/s"]
				perCore := rps / float64(p)
				fmt.Fprintf(w, "| %s | %s | %d | %s |", c, br, p, thousands(rps))
				if withBefore {
					if b, ok := findE2E(in.before, c, br, p); ok && b.m["records/s"] > 0 {
						fmt.Fprintf(w, " %s | %.2fx | %s |", thousands(b.m["records/s"]), rps/b.m["records/s"], thousands(perCPUSecond(b)))
					} else {
						fmt.Fprintf(w, " failed or not run |  |  |")
					}
				}
				fmt.Fprintf(w, " %s | %.0fx | %s | %.0f | %.3f | %.0f | %.0f | %.0f | %.0f | %.0f |\n",
					thousands(perCore), perCore/reference, thousands(perCPUSecond(r)), r.m["broker-cpu-ns/record"],
					r.m["allocs/record"], r.m["B/op"], r.m["peak-heap-MiB"], r.m["peak-rss-MiB"], r.m["MB/s"], r.m["startup-ms"])
				if c == "filter_to_jsonl" && br == "canned" && p == 1 {
					verdict := "met"
					if rps < goal {
						verdict = "NOT met"
					}
					goalLine = fmt.Sprintf("Goal: filter_to_jsonl at GOMAXPROCS=1 ≥ %s records/s (500x the reference), under the canned broker: **%s** (%s records/s, %.0fx; sluice's own CPU: %s records per CPU-second).\n",
						thousands(goal), verdict, thousands(rps), rps/reference, thousands(perCPUSecond(r)))
				}
			}
		}
	}
	fmt.Fprintf(w, "\n%s", goalLine)
	if withBefore {
		fmt.Fprintf(w, "\nBefore is %s, after %s; each pair of runs is adjacent in time, so their ratio holds better than either figure alone. A revision older than the canned broker ran its cases under the log broker only.\n", in.beforeRev, in.afterRev)
	}
	fmt.Fprintf(w, "\nrecords/s per core is records/s ÷ GOMAXPROCS. Records per CPU-second is 10⁹ ÷ the process's CPU time (user + system, all threads) per record: what a core costs when the broker is elsewhere; it is lower than records/s when the process used more than one core, higher when it waited (for the broker, or for a core the machine's other work held). Broker CPU ns/record is the broker process's CPU time over the run, per record. B/record and allocs/record include the consumer's fetch buffers. Peak RSS is the anonymous resident memory of the benchmark process (heap, stacks, runtime; not the binary's pages), sampled every 50 ms: the job's, plus the harness and what earlier cases left (the broker runs in a child process). Returning that memory to the OS before each case (debug.FreeOSMemory) would isolate the job but made it 60%% slower as its heap grew back, so the column is an upper bound.\n")

	fmt.Fprintf(w, "\n## Stages of filter_to_jsonl at GOMAXPROCS=1 (BenchmarkStage)\n\n")
	fmt.Fprintf(w, "Each stage alone on the same seeded records, per input record. Shares are of the end-to-end CPU time per record; \"engine\" is what remains (task routing, bundles, checkpoints, commits, metrics).\n\n")
	fmt.Fprintf(w, "| stage | wall ns/record | CPU ns/record | share of end-to-end CPU | allocs/record |\n|---|---:|---:|---:|---:|\n")
	e2e, haveE2E := findE2E(rs, "filter_to_jsonl", "canned", 1)
	total := e2e.m["cpu-ns/record"]
	sum := 0.0
	for _, s := range []string{"fetch", "decode", "sql", "encode", "sink"} {
		r, ok := find(rs, "BenchmarkStage/"+s, 1)
		if !ok {
			fmt.Fprintf(w, "| %s | missing |  |  |  |\n", s)
			continue
		}
		cpu := r.m["cpu-ns/record"]
		sum += cpu
		fmt.Fprintf(w, "| %s | %.0f | %.0f | %s | %.0f |\n", s, r.m["ns/op"], cpu, share(cpu, total), r.m["allocs/op"])
	}
	if haveE2E {
		fmt.Fprintf(w, "| sum of stages |  | %.0f | %s |  |\n", sum, share(sum, total))
		fmt.Fprintf(w, "| engine (end to end − stages) |  | %.0f | %s |  |\n", total-sum, share(total-sum, total))
		fmt.Fprintf(w, "| **end to end** (canned broker) | %.0f | %.0f | 100%% | %.3f |\n", e2e.m["ns/op"], total, e2e.m["allocs/record"])
	}
	fmt.Fprintf(w, "\nfetch reads from the log broker: its wall time is that broker's pace, not the client's cost: compare CPU. Alone, fetch also idles between responses and pays the wake-ups (netpoll, futex) that a busy job does not, so its CPU share here overstates its share inside the job; the profile below gives the in-job split. sink's wall time includes fsync, which at GOMAXPROCS=1 overlaps other tasks' work.\n")

	fmt.Fprintf(w, "\n## Startup and idle memory (BenchmarkStartup, GOMAXPROCS=1)\n\n")
	fmt.Fprintf(w, "| job | tasks | startup s | idle RSS MiB | peak RSS MiB | idle heap MiB | Go-mapped MiB | drain s | limits |\n|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range rs {
		if !strings.HasPrefix(r.name, "BenchmarkStartup/") {
			continue
		}
		verdict := "met"
		if r.m["startup-s"] >= 10 || r.m["rss-idle-MiB"] >= 512 {
			verdict = "NOT met"
		}
		fmt.Fprintf(w, "| %s | 6,000 | %.2f | %.0f | %.0f | %.0f | %.0f | %.2f | < 10 s, < 512 MiB: %s |\n",
			strings.TrimPrefix(r.name, "BenchmarkStartup/"), r.m["startup-s"], r.m["rss-idle-MiB"], r.m["rss-peak-MiB"],
			r.m["heap-idle-MiB"], r.m["go-mapped-MiB"], r.m["drain-s"], verdict)
	}
	fmt.Fprintf(w, "\nStartup is from parsing the job file to every task assigned; idle is 3 s later, after a GC. Then one record goes through each of the 6,000 tasks and the job drains.\n")

	if in.profile != "" {
		fmt.Fprintf(w, "\n## CPU profile of filter_to_jsonl at GOMAXPROCS=1, canned broker\n\n")
		fmt.Fprintf(w, "A separate run with -e2e.cpuprofile: the profile covers the job's timed run alone (Build, group join, fetch, decode, SQL, sinks, checkpoints, commits) and everything the process did meanwhile, the GC's background workers, the scheduler and the heap sampler included; production and checks are left out. Percentages are of that run.\n\n```\n%s```\n", in.profile)
	}

	if fails := failures(in.raw + in.rawBefore); len(fails) > 0 {
		fmt.Fprintf(w, "\n## Failures\n\n```\n%s\n```\n", strings.Join(fails, "\n"))
	}

	fmt.Fprintf(w, "\n## Raw output\n\n```\n")
	lines := strings.Split(in.raw, "\n")
	lines = slices.DeleteFunc(lines, func(l string) bool { return strings.HasPrefix(l, "ok ") || strings.TrimSpace(l) == "" })
	fmt.Fprintf(w, "%s\n```\n", strings.Join(lines, "\n"))
	if in.rawBefore != "" {
		fmt.Fprintf(w, "\n## Raw output of the before revision\n\n```\n")
		lines := strings.Split(in.rawBefore, "\n")
		lines = slices.DeleteFunc(lines, func(l string) bool { return !strings.HasPrefix(l, "Benchmark") })
		fmt.Fprintf(w, "%s\n```\n", strings.Join(lines, "\n"))
	}
}

// perCPUSecond is 10⁹ ÷ the run's CPU ns per record, 0 when unknown.
func perCPUSecond(r result) float64 {
	if ns := r.m["cpu-ns/record"]; ns > 0 {
		return 1e9 / ns
	}
	return 0
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// failures returns the `--- FAIL` lines of go test output with the
// messages indented under them.
func failures(raw string) []string {
	var out []string
	in := false
	for _, l := range strings.Split(raw, "\n") {
		switch {
		case strings.Contains(l, "--- FAIL"), strings.HasPrefix(l, "panic:"):
			in = true
			if i := strings.Index(l, "--- FAIL"); i > 0 {
				l = l[i:]
			}
			out = append(out, strings.TrimSpace(l))
		case in && strings.HasPrefix(l, "    "):
			out = append(out, l)
		default:
			in = false
		}
	}
	return out
}

// trimPprof drops pprof's header lines that name files and build ids.
func trimPprof(top string) string {
	var keep []string
	for _, l := range strings.Split(top, "\n") {
		if strings.HasPrefix(l, "File:") || strings.HasPrefix(l, "Build ID:") || strings.HasPrefix(l, "Time:") {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n")
}

func brokerNote(b string) string {
	if b == "inproc" {
		return "in the benchmark's process (their serving shares the GOMAXPROCS cores with the job)"
	}
	return "in child processes (so GOMAXPROCS counts sluice's cores alone; the broker uses another core)"
}

func share(part, total float64) string {
	if total <= 0 {
		return ""
	}
	return fmt.Sprintf("%.0f%%", 100*part/total)
}

// thousands formats v rounded, with commas.
func thousands(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
