package checkpoint

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/storage"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/cloud/azconf"
	"github.com/sluicehq/sluice/engine/cloud/s3conf"
)

// Checkpointer writes, reads and garbage-collects checkpoints in a Store. It
// implements engine.CheckpointStore, engine.CheckpointCollector and
// engine.LatestLoader.
//
// Save is called from one goroutine at a time (the engine's contract); Load,
// LoadLatest and Collect may run concurrently with it and with each other.
type Checkpointer struct {
	store  Store
	retain int
	// stateGrace and now: see WithStateGrace and CollectState.
	stateGrace time.Duration
	now        func() time.Time
	log        *slog.Logger
	m          *metrics
	close      func() error // closes what Open created; nil after New

	closeOnce sync.Once
	closeErr  error

	mu sync.Mutex // guards known, unreferenced and stateCollected
	// known holds, per job and pod, the checkpoints of that pod this
	// Checkpointer has listed or written since (seq → key). A pod appears
	// after its first listing, so that Collect lists the store once per pod
	// and process instead of at every interval.
	known map[podRef]map[uint64]string
	// unreferenced holds, per job, the state objects the last
	// CollectState found unreferenced, and since when (key → first seen).
	unreferenced map[string]map[string]time.Time
	// stateCollected holds, per job, when Collect last ran CollectState.
	stateCollected map[string]time.Time
}

type podRef struct{ job, pod string }

var (
	_ engine.CheckpointStore     = (*Checkpointer)(nil)
	_ engine.CheckpointCollector = (*Checkpointer)(nil)
	_ engine.LatestLoader        = (*Checkpointer)(nil)
)

// Open returns a Checkpointer for a store URL:
//
//   - file:///dir — a Dir rooted at /dir, created if needed; file://./dir
//     and file://../dir (the job file's default is file://./.sluice/ckpt)
//     are relative to the working directory;
//   - gs://bucket/prefix — a GCS store in bucket under prefix. Unless
//     WithStorageClient is given, the client is built by storage.NewClient
//     with JSON reads, so it honours STORAGE_EMULATOR_HOST and the
//     application default credentials; it outlives ctx (a worker's ends
//     on SIGTERM, before its drain writes the final checkpoint), and
//     Close closes it;
//   - s3://bucket/prefix — an S3 store (see S3), its client built from
//     AWS's default credential chain; the query may set region=,
//     endpoint= (an S3-compatible service: MinIO, R2) and path_style=true;
//   - azblob://container/prefix, or az://container/prefix, the same — an
//     Azure Blob store (see Azure); the query may set account= and
//     endpoint=; credentials from AZURE_STORAGE_CONNECTION_STRING,
//     AZURE_STORAGE_KEY or DefaultAzureCredential.
//
// A URL names no secret: it is logged and shown on status pages.
func Open(ctx context.Context, rawURL string, opts ...Option) (*Checkpointer, error) {
	if rel, ok := strings.CutPrefix(rawURL, "file://"); ok && (strings.HasPrefix(rel, "./") || strings.HasPrefix(rel, "../")) {
		abs, err := filepath.Abs(rel)
		if err != nil {
			return nil, fmt.Errorf("checkpoint: store url %q: %w", rawURL, err)
		}
		rawURL = "file://" + abs
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: store url: %w", err)
	}
	cfg := newConfig(opts)
	m := newMetrics(cfg.reg)
	cfg.onRetry = m.retried
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("checkpoint: store url %q: want file:///absolute/dir", rawURL)
		}
		if u.Path == "" {
			return nil, fmt.Errorf("checkpoint: store url %q: no directory", rawURL)
		}
		d, err := NewDir(u.Path)
		if err != nil {
			return nil, err
		}
		return newCheckpointer(d, cfg, m, nil), nil
	case "gs":
		if u.Host == "" {
			return nil, fmt.Errorf("checkpoint: store url %q: no bucket", rawURL)
		}
		client, closeFn := cfg.client, func() error { return nil }
		if client == nil {
			// Built with a context that never ends: ctx may end before
			// the store is closed (a worker's ends on SIGTERM, and its
			// drain still writes the final checkpoint), and the
			// golang.org/x/oauth2 credentials the client falls back on
			// when cloud.google.com/go/auth finds none may refresh their
			// token with the context they were built with.
			if client, err = storage.NewClient(context.WithoutCancel(ctx), storage.WithJSONReads()); err != nil {
				return nil, fmt.Errorf("checkpoint: storage client: %w", err)
			}
			closeFn = client.Close
		}
		g := newGCS(client, u.Host, u.Path, cfg)
		return newCheckpointer(g, cfg, m, closeFn), nil
	case "s3":
		if u.Host == "" {
			return nil, fmt.Errorf("checkpoint: store url %q: no bucket", rawURL)
		}
		p, err := parseS3Params(u.Query())
		if err != nil {
			return nil, fmt.Errorf("checkpoint: store url %q: %w", rawURL, err)
		}
		client, err := s3conf.Client(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("checkpoint: s3 client: %w", err)
		}
		return newCheckpointer(newS3(client, u.Host, u.Path, cfg), cfg, m, nil), nil
	case "azblob", "az":
		if u.Host == "" {
			return nil, fmt.Errorf("checkpoint: store url %q: no container", rawURL)
		}
		p, err := parseAzureParams(u.Query())
		if err != nil {
			return nil, fmt.Errorf("checkpoint: store url %q: %w", rawURL, err)
		}
		client, err := azconf.Client(p)
		if err != nil {
			return nil, fmt.Errorf("checkpoint: azure client: %w", err)
		}
		container := client.ServiceClient().NewContainerClient(u.Host)
		return newCheckpointer(newAzure(container, u.Path, cfg), cfg, m, nil), nil
	default:
		return nil, fmt.Errorf("checkpoint: store url %q: scheme must be file, gs, s3 or azblob", rawURL)
	}
}

// New returns a Checkpointer over any Store.
func New(store Store, opts ...Option) *Checkpointer {
	cfg := newConfig(opts)
	return newCheckpointer(store, cfg, newMetrics(cfg.reg), nil)
}

func newCheckpointer(s Store, cfg *config, m *metrics, closeFn func() error) *Checkpointer {
	return &Checkpointer{
		store: s, retain: cfg.retain, log: cfg.log, m: m, close: closeFn,
		stateGrace: cfg.stateGrace, now: cfg.now,
		known:          make(map[podRef]map[uint64]string),
		unreferenced:   make(map[string]map[string]time.Time),
		stateCollected: make(map[string]time.Time),
	}
}

// Store returns the Store the Checkpointer writes to.
func (c *Checkpointer) Store() Store { return c.store }

// Close releases the storage client Open created. It is idempotent.
func (c *Checkpointer) Close() error {
	c.closeOnce.Do(func() {
		if c.close != nil {
			c.closeErr = c.close()
		}
	})
	return c.closeErr
}

// Key returns the key of checkpoint seq of a job's pod:
// <4 hex>/<job>/<pod>/<seq>.ckpt, where the 4 hex digits fold an FNV-1a hash
// of "job/pod/seq" so that consecutive checkpoints spread over the key space
// of the bucket. The key layout is part of the format: never change it.
func Key(job, pod string, seq uint64) string {
	s := strconv.FormatUint(seq, 10)
	h := fnv.New32a()
	h.Write([]byte(job + "/" + pod + "/" + s))
	v := h.Sum32()
	return fmt.Sprintf("%04x/%s/%s/%s%s", (v>>16)^(v&0xffff), job, pod, s, keySuffix)
}

const keySuffix = ".ckpt" // part of the key format, never change

// ParseKey returns the job, pod and sequence number a checkpoint key names.
// ok is false when key is not one Key would return.
func ParseKey(key string) (job, pod string, seq uint64, ok bool) {
	parts := strings.Split(key, "/")
	if len(parts) != 4 || !strings.HasSuffix(parts[3], keySuffix) {
		return "", "", 0, false
	}
	s := strings.TrimSuffix(parts[3], keySuffix)
	seq, err := strconv.ParseUint(s, 10, 64)
	if err != nil || strconv.FormatUint(seq, 10) != s {
		return "", "", 0, false
	}
	if Key(parts[1], parts[2], seq) != key {
		return "", "", 0, false
	}
	return parts[1], parts[2], seq, true
}

// Save encodes cp and writes it as one new object, returning its key and
// size once the object is durable. It fails with ErrExists if a checkpoint
// with cp's job, pod and seq was already written (by a previous life of the
// pod, or by a zombie with the same name): the engine must then move on to a
// higher seq; nothing was overwritten. Errors of the store that may go away
// (an outage) are returned after the store's retries, and the engine's next
// interval tries again.
func (c *Checkpointer) Save(ctx context.Context, cp *engine.Checkpoint) (key string, size int, err error) {
	start := time.Now()
	defer func() {
		if err != nil {
			c.m.failed(cp.Job, "save")
		}
	}()
	if err := checkName(cp.Job); err != nil {
		return "", 0, fmt.Errorf("checkpoint: save: job: %w", err)
	}
	if err := checkName(cp.Pod); err != nil {
		return "", 0, fmt.Errorf("checkpoint: save: pod: %w", err)
	}
	data := Encode(cp)
	key = Key(cp.Job, cp.Pod, cp.Seq)
	if err := c.store.Put(ctx, key, data); err != nil {
		return "", 0, err // the store says which key
	}
	now := time.Now()
	c.m.saved(cp.Job, len(data), now.Sub(start).Seconds(), float64(now.UnixNano())/1e9)
	c.mu.Lock()
	if seqs := c.known[podRef{cp.Job, cp.Pod}]; seqs != nil {
		seqs[cp.Seq] = key
	}
	c.mu.Unlock()
	return key, len(data), nil
}

// Load reads, verifies and decodes the checkpoint at key. A damaged object,
// or a sound one whose job, pod and seq are not those its key names, yields
// a *CorruptError (errors.Is ErrCorrupt) carrying the key; a missing one
// ErrNotFound.
func (c *Checkpointer) Load(ctx context.Context, key string) (*engine.Checkpoint, error) {
	job, pod, seq, ok := ParseKey(key)
	if !ok {
		return nil, fmt.Errorf("checkpoint: load %q: not a checkpoint key", key)
	}
	data, err := c.store.Get(ctx, key)
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			c.m.failed(job, "load")
		}
		return nil, err
	}
	cp, err := Decode(data)
	if err == nil && (cp.Job != job || cp.Pod != pod || cp.Seq != seq) {
		err = &CorruptError{Field: "header", Reason: fmt.Sprintf("object holds checkpoint %d of %s/%s", cp.Seq, cp.Job, cp.Pod)}
		cp = nil
	}
	if ce := (*CorruptError)(nil); errors.As(err, &ce) {
		ce.Key = key
		c.m.corrupted(job)
		c.m.failed(job, "load")
		return nil, ce
	}
	return cp, err
}

// LoadLatest returns the newest checkpoint of a job's pod that decodes, and
// its key. Corrupt or truncated checkpoints are skipped (each is logged and
// counted) in favour of the previous one; if there is none, or none is
// sound, the error wraps ErrNotFound. It lists the store.
func (c *Checkpointer) LoadLatest(ctx context.Context, job, pod string) (*engine.Checkpoint, string, error) {
	seqs, err := c.list(ctx, job, pod)
	if err != nil {
		c.m.failed(job, "load")
		return nil, "", err
	}
	return c.newest(ctx, job, pod, seqs, "")
}

// LoadBefore returns the newest sound checkpoint of the same pod that is
// older than key: where to go when the checkpoint a commit names is corrupt.
func (c *Checkpointer) LoadBefore(ctx context.Context, key string) (*engine.Checkpoint, string, error) {
	job, pod, seq, ok := ParseKey(key)
	if !ok {
		return nil, "", fmt.Errorf("checkpoint: load before %q: not a checkpoint key", key)
	}
	seqs, err := c.list(ctx, job, pod)
	if err != nil {
		c.m.failed(job, "load")
		return nil, "", err
	}
	for s := range seqs {
		if s >= seq {
			delete(seqs, s)
		}
	}
	return c.newest(ctx, job, pod, seqs, key)
}

func (c *Checkpointer) newest(ctx context.Context, job, pod string, seqs map[uint64]string, before string) (*engine.Checkpoint, string, error) {
	order := make([]uint64, 0, len(seqs))
	for s := range seqs {
		order = append(order, s)
	}
	slices.SortFunc(order, func(a, b uint64) int { return cmp.Compare(b, a) })
	for _, s := range order {
		key := seqs[s]
		cp, err := c.Load(ctx, key)
		switch {
		case err == nil:
			return cp, key, nil
		case errors.Is(err, ErrCorrupt):
			c.log.Warn("skipping corrupt checkpoint", "job", job, "pod", pod, "key", key, "err", err)
		case errors.Is(err, ErrNotFound): // collected since the listing
		default:
			return nil, "", fmt.Errorf("checkpoint: latest of %s/%s: %w", job, pod, err)
		}
	}
	if before != "" {
		return nil, "", fmt.Errorf("checkpoint: no sound checkpoint of %s/%s before %s: %w", job, pod, before, ErrNotFound)
	}
	return nil, "", fmt.Errorf("checkpoint: no sound checkpoint of %s/%s: %w", job, pod, ErrNotFound)
}

// list lists the store for the checkpoints of one pod, refreshes what the
// Checkpointer knows of them, and returns a copy (seq → key).
func (c *Checkpointer) list(ctx context.Context, job, pod string) (map[uint64]string, error) {
	keys, err := c.store.List(ctx, "")
	if err != nil {
		return nil, err
	}
	seqs := make(map[uint64]string)
	for _, k := range keys {
		if j, p, s, ok := ParseKey(k); ok && j == job && p == pod {
			seqs[s] = k
		}
	}
	c.mu.Lock()
	known := c.known[podRef{job, pod}]
	if known == nil {
		known = make(map[uint64]string, len(seqs))
		c.known[podRef{job, pod}] = known
	}
	for s, k := range seqs {
		known[s] = k
	}
	c.mu.Unlock()
	return seqs, nil
}

// Collect deletes the checkpoints of a job's pod that are older than its
// newest WithRetain ones and whose keys are not in keep (the keys committed
// offsets still reference, across the whole group). The first Collect of a
// pod lists the store, which catches what earlier lives of the pod left; later
// ones work from what this Checkpointer wrote and deleted since. A failed
// deletion is reported and retried at the next Collect. Every quarter of the
// state grace period (and at its first call), Collect also runs
// CollectState for the job.
func (c *Checkpointer) Collect(ctx context.Context, job, pod string, keep []string) error {
	err := c.collect(ctx, job, pod, keep)
	now := c.now()
	c.mu.Lock()
	last, ok := c.stateCollected[job]
	due := !ok || now.Sub(last) >= c.stateGrace/4
	if due {
		c.stateCollected[job] = now
	}
	c.mu.Unlock()
	if due {
		if _, serr := c.CollectState(ctx, job); serr != nil {
			err = errors.Join(err, serr)
		}
	}
	return err
}

func (c *Checkpointer) collect(ctx context.Context, job, pod string, keep []string) error {
	c.mu.Lock()
	listed := c.known[podRef{job, pod}] != nil
	c.mu.Unlock()
	if !listed {
		if _, err := c.list(ctx, job, pod); err != nil {
			c.m.failed(job, "collect")
			return fmt.Errorf("checkpoint: collect %s/%s: %w", job, pod, err)
		}
	}

	kept := make(map[string]bool, len(keep))
	for _, k := range keep {
		kept[k] = true
	}
	c.mu.Lock()
	known := c.known[podRef{job, pod}]
	order := make([]uint64, 0, len(known))
	for s := range known {
		order = append(order, s)
	}
	slices.Sort(order)
	var doomed []string
	if n := len(order) - c.retain; n > 0 {
		for _, s := range order[:n] {
			if k := known[s]; !kept[k] {
				doomed = append(doomed, k)
			}
		}
	}
	c.mu.Unlock()

	var errs []error
	deleted := 0
	for _, k := range doomed {
		if err := c.store.Delete(ctx, k); err != nil {
			errs = append(errs, err)
			continue
		}
		deleted++
		_, _, s, _ := ParseKey(k)
		c.mu.Lock()
		delete(known, s)
		c.mu.Unlock()
	}
	c.m.deleted(job, deleted)
	if len(errs) > 0 {
		c.m.failed(job, "collect")
		return fmt.Errorf("checkpoint: collect %s/%s: %w", job, pod, errors.Join(errs...))
	}
	return nil
}
