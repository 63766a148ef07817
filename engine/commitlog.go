package engine

import (
	"context"
	"sync"
)

// CommitLog is Source.Commit for a source with no broker to commit to (a
// file, the generator): the checkpoint already holds its positions durably,
// so it only keeps the last ones committed, for Committed, tests and status.
// A source embeds it. It is safe for concurrent use.
type CommitLog struct {
	mu        sync.Mutex // guards committed and meta
	committed []Position
	meta      string
}

// Commit implements Source.Commit: it records positions and meta.
func (l *CommitLog) Commit(_ context.Context, positions []Position, meta string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.committed = append(l.committed[:0], positions...)
	l.meta = meta
	return nil
}

// Committed returns the positions of the last Commit.
func (l *CommitLog) Committed() []Position {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Position(nil), l.committed...)
}
