package app

import (
	"context"

	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/engine"
)

// multiSource runs several sources as one: a job whose pipelines read several
// files, or files and Kafka. Each task belongs to exactly one of them.
type multiSource struct {
	srcs []engine.Source
}

func (m *multiSource) Run(ctx context.Context, h engine.Handler) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, s := range m.srcs {
		g.Go(func() error { return s.Run(ctx, h) })
	}
	return g.Wait()
}

// Commit hands every source the whole list: each commits the positions of
// its own tasks and ignores the others.
func (m *multiSource) Commit(ctx context.Context, ps []engine.Position, meta string) error {
	for _, s := range m.srcs {
		if err := s.Commit(ctx, ps, meta); err != nil {
			return err
		}
	}
	return nil
}

func (m *multiSource) Pause(ids ...engine.TaskID) {
	for _, s := range m.srcs {
		if p, ok := s.(engine.Pauser); ok {
			p.Pause(ids...)
		}
	}
}

func (m *multiSource) Resume(ids ...engine.TaskID) {
	for _, s := range m.srcs {
		if p, ok := s.(engine.Pauser); ok {
			p.Resume(ids...)
		}
	}
}

func (m *multiSource) Close() error {
	for _, s := range m.srcs {
		if c, ok := s.(interface{ Close() error }); ok {
			c.Close()
		}
	}
	return nil
}
