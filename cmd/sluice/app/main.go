package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

const usage = `sluice — stream processing for multi-tenant Kafka pipelines

Usage:
  sluice dev [JOB.yaml]         run a job on one machine: embedded Kafka, generated
                                firewall traffic, local checkpoints (default job if none)
  sluice run JOB.yaml           run the worker of a job; SIGTERM drains
  sluice validate JOB.yaml...   check job files; every error as FILE:LINE:COL
  sluice render JOB.yaml        Kubernetes manifests for a job
  sluice coordinator [flags]    the autoscaler for the jobs it watches
  sluice operator [flags]       the control plane: reconciles SluiceJob resources
  sluice jobs COMMAND ...       apply|get|list|suspend|resume|delete|history SluiceJobs

Exit codes: 0 success, 1 invalid input or failed run, 2 wrong usage.
`

// Main runs the command line and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(ctx, args[1:], stdout, stderr)
	case "dev":
		return cmdDev(ctx, args[1:], stdout, stderr)
	case "validate":
		return cmdValidate(ctx, args[1:], stdout, stderr)
	case "render":
		return cmdRender(ctx, args[1:], stdout, stderr)
	case "coordinator":
		return cmdCoordinator(ctx, args[1:], stdout, stderr)
	case "operator":
		return cmdOperator(ctx, args[1:], stdout, stderr)
	case "jobs":
		return cmdJobs(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "sluice: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// newLogger is the command's logger. redact (the job's, or nil) removes
// secrets from every line it writes.
func newLogger(w io.Writer, redact func(string) string) *slog.Logger {
	level := slog.LevelInfo
	if strings.EqualFold(os.Getenv("SLUICE_LOG"), "debug") {
		level = slog.LevelDebug
	}
	return slog.New(redactLogs(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}), redact))
}

// podName is this member's name: POD_NAME (set from the downward API in the
// rendered StatefulSet), else the host name.
func podName() string {
	if p := os.Getenv("POD_NAME"); p != "" {
		return p
	}
	if h, err := os.Hostname(); err == nil {
		return h
	}
	return "sluice-0"
}

// parseFlags parses args into fl and reports whether the command goes on;
// when it does not, code is its exit code: 0 after -h or --help (fl has
// printed the usage), 2 for a flag that is wrong (fl has said which).
func parseFlags(fl *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	return 0, true
}
