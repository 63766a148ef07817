package checkpoint

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble"

	"github.com/sluicehq/sluice/engine"
)

// TaskStates opens the keyed state of a job's tasks: one Pebble database
// per task under a local directory, restored from and snapshot into a State
// (engine.StateStore). It is safe for concurrent use; each TaskStore it
// returns is used by one goroutine.
type TaskStates struct {
	state *State
	dir   string
	job   string
}

var _ engine.StateStore = (*TaskStates)(nil)

// TaskStateThreshold is the sstable size from which a task's state file
// is an object of its own (WithStateThreshold) as cmd/sluice sets it: task
// sstables are written once and shared by every later snapshot, so only a
// snapshot's small files (MANIFEST, OPTIONS, the WAL's tail) are copied into
// its manifest.
const TaskStateThreshold = 4 << 10

// NewTaskStates keeps task databases under dir (created if needed; what a
// previous process left there is removed, since a task's state always
// comes from its checkpoint) and snapshots them for job through state.
func NewTaskStates(state *State, dir, job string) (*TaskStates, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("checkpoint: task state dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("checkpoint: task state dir: %w", err)
	}
	return &TaskStates{state: state, dir: dir, job: job}, nil
}

// Open implements engine.StateStore: the task's database, restored from the
// snapshot ref when it is not "".
func (s *TaskStates) Open(ctx context.Context, task engine.TaskID, ref string) (engine.TaskStore, error) {
	name := strings.Map(func(r rune) rune {
		if r == '/' || r == os.PathSeparator {
			return '_'
		}
		return r
	}, task.Topic) + "-" + strconv.Itoa(int(task.Partition))
	tmp, err := os.MkdirTemp(s.dir, name+"-")
	if err != nil {
		return nil, fmt.Errorf("checkpoint: open task state: %w", err)
	}
	dbDir := filepath.Join(tmp, "db")
	if ref != "" {
		if err := s.state.Restore(ctx, ref, dbDir); err != nil {
			os.RemoveAll(tmp)
			return nil, err
		}
	}
	// No WAL: the durable copy of a task's state is its snapshot in the
	// checkpoint store, and Snapshot flushes the memtable first.
	db, err := pebble.Open(dbDir, &pebble.Options{Logger: quietLogger{}, DisableWAL: true})
	if err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("checkpoint: open task state: %w", err)
	}
	return &taskStore{s: s, db: db, dir: tmp}, nil
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)         {}
func (quietLogger) Errorf(string, ...any)        {}
func (quietLogger) Fatalf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }

// taskStore is one task's Pebble database (engine.TaskStore).
type taskStore struct {
	s   *TaskStates
	db  *pebble.DB
	dir string
}

func (t *taskStore) Apply(fill func(put func(k, v []byte), del func(k []byte))) error {
	b := t.db.NewBatch()
	var err error
	fill(func(k, v []byte) {
		if err == nil {
			err = b.Set(k, v, nil)
		}
	}, func(k []byte) {
		if err == nil {
			err = b.Delete(k, nil)
		}
	})
	if err == nil {
		// No sync: after a crash the state comes from the checkpoint
		// store, never from this disk.
		err = b.Commit(pebble.NoSync)
	}
	b.Close()
	if err != nil {
		return fmt.Errorf("checkpoint: write task state: %w", err)
	}
	return nil
}

func (t *taskStore) Scan(prefix []byte, fn func(k, v []byte) error) error {
	upper := append([]byte(nil), prefix...)
	for i := len(upper) - 1; i >= 0; i-- {
		if upper[i] < 0xff {
			upper[i]++
			upper = upper[:i+1]
			break
		}
		if i == 0 {
			upper = nil
		}
	}
	it, err := t.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("checkpoint: scan task state: %w", err)
	}
	for it.First(); it.Valid(); it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("checkpoint: scan task state: %w", err)
	}
	return nil
}

func (t *taskStore) Snapshot(ctx context.Context) (string, error) {
	// Flushed, the changes since the last snapshot are a new sstable,
	// shared by every later snapshot, instead of a WAL copied inline into
	// each manifest.
	if err := t.db.Flush(); err != nil {
		return "", fmt.Errorf("checkpoint: snapshot task state: flush: %w", err)
	}
	return t.s.state.Snapshot(ctx, t.db, t.dir, t.s.job)
}

func (t *taskStore) Close() error {
	t.s.state.Forget(t.db)
	err := t.db.Close()
	if rerr := os.RemoveAll(t.dir); err == nil {
		err = rerr
	}
	return err
}
