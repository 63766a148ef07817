package app

import (
	"context"
	"fmt"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/engine"
)

// multiSource runs several sources as one: a job whose pipelines read several
// files, or files and Kafka. Each task belongs to exactly one of them: the one
// that assigned it. Commit hands each source only the positions of its own
// tasks, as engine.Source's contract asks (a source rejects a commit of a
// task it does not own).
type multiSource struct {
	srcs []engine.Source

	mu    sync.Mutex                      // guards owner
	owner map[engine.TaskID]engine.Source // the source that assigned each task
}

func newMultiSource(srcs []engine.Source) *multiSource {
	return &multiSource{srcs: srcs, owner: map[engine.TaskID]engine.Source{}}
}

func (m *multiSource) Run(ctx context.Context, h engine.Handler) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, s := range m.srcs {
		g.Go(func() error { return s.Run(ctx, &owningHandler{Handler: h, m: m, src: s}) })
	}
	return g.Wait()
}

// owningHandler records which source assigned a task before passing the
// assignment on, and forgets it once the revocation has drained the task.
type owningHandler struct {
	engine.Handler
	m   *multiSource
	src engine.Source
}

func (o *owningHandler) Assign(ctx context.Context, tasks []engine.Assignment) {
	o.m.mu.Lock()
	for _, a := range tasks {
		o.m.owner[a.Task] = o.src
	}
	o.m.mu.Unlock()
	o.Handler.Assign(ctx, tasks)
}

// Batch forwards engine.Batcher, which embedding the Handler would hide.
func (o *owningHandler) Batch(n int) []engine.Record {
	if b, ok := o.Handler.(engine.Batcher); ok {
		return b.Batch(n)
	}
	return make([]engine.Record, 0, n)
}

func (o *owningHandler) Revoke(ctx context.Context, tasks []engine.TaskID) {
	o.Handler.Revoke(ctx, tasks) // drains and commits through the owner
	o.m.mu.Lock()
	for _, t := range tasks {
		if o.m.owner[t] == o.src {
			delete(o.m.owner, t)
		}
	}
	o.m.mu.Unlock()
}

// Commit splits the positions by the source that owns each task and commits
// each share with its source. A position of a task no source owns is an
// error, never handed to a source that would have to ignore it.
func (m *multiSource) Commit(ctx context.Context, ps []engine.Position, meta string) error {
	m.mu.Lock()
	shares := make(map[engine.Source][]engine.Position, len(m.srcs))
	var unowned []engine.TaskID
	for _, p := range ps {
		s, ok := m.owner[p.Task]
		if !ok {
			unowned = append(unowned, p.Task)
			continue
		}
		shares[s] = append(shares[s], p)
	}
	m.mu.Unlock()
	for _, s := range m.srcs {
		if share := shares[s]; len(share) > 0 {
			if err := s.Commit(ctx, share, meta); err != nil {
				return err
			}
		}
	}
	if len(unowned) > 0 {
		return fmt.Errorf("commit: no source owns task %s", unowned[0])
	}
	return nil
}

func (m *multiSource) Pause(ids ...engine.TaskID) {
	for s, share := range m.split(ids) {
		if p, ok := s.(engine.Pauser); ok {
			p.Pause(share...)
		}
	}
}

func (m *multiSource) Resume(ids ...engine.TaskID) {
	for s, share := range m.split(ids) {
		if p, ok := s.(engine.Pauser); ok {
			p.Resume(share...)
		}
	}
}

// split groups tasks by the source that owns them.
func (m *multiSource) split(ids []engine.TaskID) map[engine.Source][]engine.TaskID {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[engine.Source][]engine.TaskID{}
	for _, id := range ids {
		if s, ok := m.owner[id]; ok {
			out[s] = append(out[s], id)
		}
	}
	return out
}

func (m *multiSource) Close() error {
	for _, s := range m.srcs {
		if c, ok := s.(interface{ Close() error }); ok {
			c.Close()
		}
	}
	return nil
}

// EndOffset implements engine.EndOffsetter through the source that owns the
// task.
func (m *multiSource) EndOffset(id engine.TaskID) (int64, bool) {
	m.mu.Lock()
	s := m.owner[id]
	m.mu.Unlock()
	if e, ok := s.(engine.EndOffsetter); ok {
		return e.EndOffset(id)
	}
	return 0, false
}
