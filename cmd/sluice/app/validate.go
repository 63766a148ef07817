package app

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/sluicehq/sluice/engine/config"
)

// cmdValidate checks job files as run would, without connecting anything.
// It is interruptible: a signal (ctx) ends it at once, even while it waits on
// a file that never ends.
func cmdValidate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: sluice validate JOB.yaml...")
		return 2
	}
	return interruptible(ctx, stdout, stderr, func(stdout, stderr io.Writer) int {
		code := 0
		for _, path := range args {
			if err := validateFile(ctx, path); err != nil {
				fmt.Fprintln(stderr, err)
				code = 1
				continue
			}
			fmt.Fprintf(stdout, "%s: ok\n", path)
		}
		return code
	})
}

// validateFile reports every problem of one job file, those of the file and
// those its components find, at once.
func validateFile(ctx context.Context, path string) error {
	cj, err := config.Load(path, nil)
	if cj == nil {
		return err
	}
	_, berr := Build(ctx, cj, Options{DryRun: true})
	return config.Merge(err, berr)
}

// interruptible runs a command's work and returns its exit code, or 1 as
// soon as ctx ends (SIGINT, SIGTERM): the work may be blocked in a read that
// no signal interrupts, and the process exits right after. The work writes
// through gates that close when it is abandoned, so that nothing it prints
// later reaches the command's output.
func interruptible(ctx context.Context, stdout, stderr io.Writer, work func(stdout, stderr io.Writer) int) int {
	out, errOut := &gate{w: stdout}, &gate{w: stderr}
	done := make(chan int, 1)
	go func() { done <- work(out, errOut) }()
	select {
	case code := <-done:
		return code
	case <-ctx.Done():
		out.close()
		errOut.close()
		fmt.Fprintln(stderr, "sluice: interrupted")
		return 1
	}
}

// gate is a writer that drops what it is given once closed.
type gate struct {
	mu     sync.Mutex // guards w and closed, and serializes writes
	w      io.Writer
	closed bool
}

func (g *gate) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return len(p), nil
	}
	return g.w.Write(p)
}

func (g *gate) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}
