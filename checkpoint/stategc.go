package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// DefaultStateGrace is how long a state object that nothing refers to is
// left in the store before CollectState deletes it (WithStateGrace).
const DefaultStateGrace = time.Hour

// WithStateGrace sets how long CollectState leaves a state object that no
// retained checkpoint refers to before deleting it (default
// DefaultStateGrace, 1 hour). A pod uploads a snapshot's objects before
// the checkpoint that names them is written; the grace period is what
// keeps a concurrent collector from deleting them in between, so it must
// be far longer than a snapshot and a checkpoint Save take. It is also
// how often, at most, Collect runs CollectState.
func WithStateGrace(d time.Duration) Option {
	return func(c *config) { c.stateGrace = max(d, 0) }
}

// isStateKey reports whether key is a state object of job: a manifest or a
// shared file, <4 hex>/<job>/state/<sha-256 hex>.state or .sst.
func isStateKey(key, job string) bool {
	parts := strings.Split(key, "/")
	if len(parts) != 4 || parts[1] != job || parts[2] != stateDir {
		return false
	}
	name, ok := strings.CutSuffix(parts[3], manifestSuffix)
	if !ok {
		name, ok = strings.CutSuffix(parts[3], sharedSuffix)
	}
	return ok && len(name) == 64 && strings.HasPrefix(name, parts[0]) && strings.Trim(name, "0123456789abcdef") == ""
}

// CollectState deletes the state objects of job (snapshot manifests and
// the shared files they name) that no checkpoint of any pod of the job
// refers to and that this Checkpointer has seen unreferenced, at every
// CollectState since, for at least the grace period (WithStateGrace). It
// lists the store, reads every checkpoint of the job that is there — the
// ones Collect retains, of every pod — and the manifests they name. It
// deletes nothing when a checkpoint or a manifest cannot be read for any
// reason but its absence (a checkpoint collected since the listing): an
// unreadable manifest's files might still be needed. It returns how many
// objects it deleted.
//
// The grace period covers the objects of a snapshot being taken: a pod
// writes a snapshot's shared files, then its manifest, then the checkpoint
// that names the manifest, and a State trusts its memory of the files it
// uploaded for at most half the grace period (it uploads them again after
// that). A collector that lists the store between those writes sees the
// new objects unreferenced, and would delete them only if they were still
// unreferenced a grace period later.
func (c *Checkpointer) CollectState(ctx context.Context, job string) (int, error) {
	n, err := c.collectState(ctx, job)
	c.m.deleted(job, n)
	if err != nil {
		c.m.failed(job, "collect")
		return n, fmt.Errorf("checkpoint: collect state of %s: %w", job, err)
	}
	return n, nil
}

func (c *Checkpointer) collectState(ctx context.Context, job string) (int, error) {
	now := c.now()
	keys, err := c.store.List(ctx, "")
	if err != nil {
		return 0, err
	}
	var objects, checkpoints []string
	for _, k := range keys {
		if isStateKey(k, job) {
			objects = append(objects, k)
		} else if j, _, _, ok := ParseKey(k); ok && j == job {
			checkpoints = append(checkpoints, k)
		}
	}

	if len(objects) == 0 { // a stateless job: no checkpoint to read
		c.mu.Lock()
		delete(c.unreferenced, job)
		c.mu.Unlock()
		return 0, nil
	}

	// Mark what the checkpoints there refer to.
	live := make(map[string]bool)
	st := &State{store: c.store}
	for _, k := range checkpoints {
		cp, err := c.Load(ctx, k)
		if errors.Is(err, ErrNotFound) {
			continue // collected since the listing
		}
		if err != nil {
			return 0, err
		}
		for _, ts := range cp.Tasks {
			if ts.State == "" || live[ts.State] {
				continue
			}
			objs, err := st.Objects(ctx, ts.State)
			if errors.Is(err, ErrNotFound) {
				continue // only a corrupt or collected checkpoint names a missing manifest
			}
			if err != nil {
				return 0, err
			}
			for _, o := range objs {
				live[o] = true
			}
		}
	}

	// Sweep what has been unreferenced for the grace period.
	c.mu.Lock()
	seen := c.unreferenced[job]
	fresh := make(map[string]time.Time)
	var doomed []string
	for _, k := range objects {
		if live[k] {
			continue
		}
		since, ok := seen[k]
		if !ok {
			since = now
		}
		if now.Sub(since) >= c.stateGrace {
			doomed = append(doomed, k)
		} else {
			fresh[k] = since
		}
	}
	c.unreferenced[job] = fresh
	c.mu.Unlock()

	var errs []error
	deleted := 0
	for _, k := range doomed {
		if err := c.store.Delete(ctx, k); err != nil {
			errs = append(errs, err)
			c.mu.Lock()
			c.unreferenced[job][k] = seen[k] // due again at the next CollectState
			c.mu.Unlock()
			continue
		}
		deleted++
	}
	return deleted, errors.Join(errs...)
}
