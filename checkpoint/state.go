package checkpoint

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble"
)

// The constants below are part of the format, never change them.
const (
	// stateMagic opens a state manifest: "SLST". The envelope (version,
	// flags, length, CRC-32C) is the checkpoint object's.
	stateMagic = "SLST"
	// How a file is held by a manifest.
	fileInline = 0 // its bytes follow in the manifest
	fileShared = 1 // it is its own object, named by the key that follows
	// stateDir separates keyed state from checkpoints under a job:
	// <4 hex>/<job>/state/<sha-256 hex><suffix>.
	stateDir       = "state"
	manifestSuffix = ".state"
	sharedSuffix   = ".sst"
)

// State snapshots the keyed state of tasks, each held in a Pebble database on
// local disk, into immutable objects of a Store, and restores it.
//
// A snapshot is a Pebble checkpoint (a consistent set of files) described by
// one manifest object, whose key is what TaskState.State holds. Files of at
// least the threshold (WithStateThreshold, default 1 MiB) — in practice the
// sstables, which Pebble never modifies — are objects of their own, named by
// the SHA-256 of their contents, so a later snapshot that still has them
// refers to the same objects instead of writing them again: snapshots are
// incremental, like RocksDB's SST checkpoints. Smaller files (MANIFEST,
// OPTIONS, WAL, small sstables) are held inline in the manifest. Every object
// is content-addressed, so a Put that finds its key taken has nothing left to
// do.
//
// State is safe for concurrent use. It remembers which sstables of each
// database it has uploaded, so that unchanged ones are not even read again;
// call Forget when a database is closed.
type State struct {
	store     Store
	threshold int64
	// trust is how long State relies on its memory that a shared file is
	// in the store: half the state grace period (see CollectState).
	trust time.Duration
	now   func() time.Time

	mu       sync.Mutex // guards uploaded
	uploaded map[*pebble.DB]map[string]stateFile
}

// stateFile is one file of a snapshot, as its manifest records it.
type stateFile struct {
	name string
	size uint64
	sum  [sha256.Size]byte
	key  string // the shared object, or "" when data is inline
	data []byte
	at   time.Time // when State last wrote the shared object, or found it there
}

// NewState returns a State writing to store. Of the options,
// WithStateThreshold applies.
func NewState(store Store, opts ...Option) *State {
	cfg := newConfig(opts)
	return &State{store: store, threshold: cfg.stateThreshold, trust: cfg.stateGrace / 2, now: cfg.now, uploaded: make(map[*pebble.DB]map[string]stateFile)}
}

// WithStateThreshold sets the size from which a file of a state snapshot is
// an object of its own, shared by later snapshots, instead of being copied
// into each snapshot's manifest (default 1 MiB).
func WithStateThreshold(n int64) Option {
	return func(c *config) { c.stateThreshold = max(n, 1) }
}

// Snapshot writes a consistent snapshot of db, the keyed state of one task of
// job, and returns the key of its manifest, for TaskState.State. scratch is a
// directory on db's file system where Pebble's checkpoint of db is made
// (sstables are hard-linked, not copied) and then removed. It must be called
// after the task's bundle is complete, like the checkpoint that refers to it.
func (s *State) Snapshot(ctx context.Context, db *pebble.DB, scratch, job string) (string, error) {
	if err := checkName(job); err != nil {
		return "", fmt.Errorf("checkpoint: snapshot state: job: %w", err)
	}
	tmp, err := os.MkdirTemp(scratch, tempPrefix+"state-*")
	if err != nil {
		return "", fmt.Errorf("checkpoint: snapshot state: %w", err)
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "db")
	if err := db.Checkpoint(dir, pebble.WithFlushedWAL()); err != nil {
		return "", fmt.Errorf("checkpoint: snapshot state: pebble checkpoint: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("checkpoint: snapshot state: %w", err)
	}

	s.mu.Lock()
	known := s.uploaded[db]
	if known == nil {
		known = make(map[string]stateFile)
		s.uploaded[db] = known
	}
	s.mu.Unlock()

	files := make([]stateFile, 0, len(ents))
	for _, e := range ents {
		if !e.Type().IsRegular() {
			return "", fmt.Errorf("checkpoint: snapshot state: unexpected %s in pebble checkpoint", e.Name())
		}
		f, err := s.file(ctx, known, job, dir, e)
		if err != nil {
			return "", err
		}
		files = append(files, f)
	}

	manifest := encodeManifest(job, files)
	key := contentKey(job, sha256.Sum256(manifest), manifestSuffix)
	if err := s.store.Put(ctx, key, manifest); err != nil && !errors.Is(err, ErrExists) {
		return "", err
	}
	return key, nil
}

// file returns one file of a Pebble checkpoint as the manifest will hold it,
// uploading it first if it is large and not uploaded yet.
func (s *State) file(ctx context.Context, known map[string]stateFile, job, dir string, e os.DirEntry) (stateFile, error) {
	info, err := e.Info()
	if err != nil {
		return stateFile{}, fmt.Errorf("checkpoint: snapshot state: %w", err)
	}
	shared := info.Size() >= s.threshold && strings.HasSuffix(e.Name(), ".sst")
	if shared {
		s.mu.Lock()
		f, ok := known[e.Name()]
		s.mu.Unlock()
		if ok && f.size == uint64(info.Size()) && s.now().Sub(f.at) < s.trust {
			return f, nil
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, e.Name()))
	if err != nil {
		return stateFile{}, fmt.Errorf("checkpoint: snapshot state: %w", err)
	}
	f := stateFile{name: e.Name(), size: uint64(len(data)), sum: sha256.Sum256(data)}
	if !shared {
		f.data = data
		return f, nil
	}
	f.key = contentKey(job, f.sum, sharedSuffix)
	f.at = s.now()
	if err := s.store.Put(ctx, f.key, data); err != nil && !errors.Is(err, ErrExists) {
		return stateFile{}, err
	}
	s.mu.Lock()
	known[f.name] = f
	s.mu.Unlock()
	return f, nil
}

// Forget drops what State remembers of db's uploaded files. Call it when db
// is closed; a later Snapshot of a database at the same address would
// otherwise trust names that now mean other files.
func (s *State) Forget(db *pebble.DB) {
	s.mu.Lock()
	delete(s.uploaded, db)
	s.mu.Unlock()
}

// Restore writes the snapshot whose manifest is ref into dir, which must not
// exist, so that pebble.Open(dir, ...) opens the task's state as it was. Each
// file is checked against the size and SHA-256 its manifest records; on any
// error dir is removed, so a restore is never half-applied. A damaged object
// yields ErrCorrupt naming its key.
func (s *State) Restore(ctx context.Context, ref, dir string) (err error) {
	files, err := s.manifest(ctx, ref)
	if err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("checkpoint: restore state %s: %w", ref, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	for _, f := range files {
		data := f.data
		if f.key != "" {
			if data, err = s.store.Get(ctx, f.key); err != nil {
				return fmt.Errorf("checkpoint: restore state %s: %w", ref, err)
			}
		}
		if uint64(len(data)) != f.size || sha256.Sum256(data) != f.sum {
			return &CorruptError{Key: cmpOr(f.key, ref), Field: f.name, Reason: "contents do not match the manifest's size and SHA-256"}
		}
		if err := writeFileSync(filepath.Join(dir, f.name), data); err != nil {
			return fmt.Errorf("checkpoint: restore state %s: %w", ref, err)
		}
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("checkpoint: restore state %s: %w", ref, err)
	}
	return nil
}

// Objects returns the keys of the objects a snapshot consists of: its
// manifest and the shared files it refers to. A collector keeps these alive
// as long as a retained checkpoint names ref.
func (s *State) Objects(ctx context.Context, ref string) ([]string, error) {
	files, err := s.manifest(ctx, ref)
	if err != nil {
		return nil, err
	}
	keys := []string{ref}
	for _, f := range files {
		if f.key != "" {
			keys = append(keys, f.key)
		}
	}
	return keys, nil
}

func (s *State) manifest(ctx context.Context, ref string) ([]stateFile, error) {
	data, err := s.store.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	files, err := decodeManifest(data)
	if ce := (*CorruptError)(nil); errors.As(err, &ce) {
		ce.Key = ref
		return nil, ce
	}
	return files, err
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// contentKey names an object by its contents:
// <4 hex>/<job>/state/<sha-256 hex><suffix>, the 4 hex digits being the
// hash's first two bytes.
func contentKey(job string, sum [sha256.Size]byte, suffix string) string {
	h := hex.EncodeToString(sum[:])
	return h[:4] + "/" + job + "/" + stateDir + "/" + h + suffix
}

// encodeManifest lays out a manifest (see doc.go): in the checkpoint
// envelope with magic "SLST", the job, then each file in name order.
func encodeManifest(job string, files []stateFile) []byte {
	files = slices.Clone(files)
	slices.SortFunc(files, func(a, b stateFile) int { return strings.Compare(a.name, b.name) })
	size := len(job) + 8
	for _, f := range files {
		size += len(f.name) + len(f.key) + len(f.data) + 48
	}
	b := newFrame(stateMagic, size)
	b = appendString(b, job)
	b = binary.AppendUvarint(b, uint64(len(files)))
	for _, f := range files {
		b = appendString(b, f.name)
		b = binary.AppendUvarint(b, f.size)
		b = append(b, f.sum[:]...)
		if f.key == "" {
			b = append(b, fileInline)
			b = append(b, f.data...)
		} else {
			b = append(b, fileShared)
			b = appendString(b, f.key)
		}
	}
	return sealFrame(b)
}

func decodeManifest(data []byte) ([]stateFile, error) {
	d, err := openFrame(data, stateMagic)
	if err != nil {
		return nil, err
	}
	d.string("job")
	n := d.count("file count", 2+sha256.Size+1)
	files := make([]stateFile, 0, n)
	for range n {
		var f stateFile
		f.name = d.string("file name")
		if d.err == nil && (checkName(f.name) != nil || strings.HasPrefix(f.name, ".")) {
			d.fail(d.off, "file name", "%q is not a plain file name", f.name)
		}
		f.size = d.uvarint("file size")
		copy(f.sum[:], d.bytes("file hash", sha256.Size))
		start := d.off
		switch kind := d.bytes("file kind", 1); {
		case d.err != nil:
		case kind[0] == fileInline:
			if f.size > uint64(len(d.b)-d.off) {
				d.fail(start, "file data", "%d bytes run past the end", f.size)
				break
			}
			f.data = bytes.Clone(d.bytes("file data", int(f.size)))
		case kind[0] == fileShared:
			f.key = d.string("file key")
			if d.err == nil && checkKey(f.key) != nil {
				d.fail(start, "file key", "%q is not a key", f.key)
			}
		default:
			d.fail(start, "file kind", "unknown kind %d", kind[0])
		}
		if d.err != nil {
			break
		}
		files = append(files, f)
	}
	if err := d.finish(); err != nil {
		return nil, err
	}
	return files, nil
}

// bytes returns the next n bytes of the body, aliasing it.
func (d *decoder) bytes(field string, n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b)-d.off {
		d.fail(d.off, field, "%d bytes run past the end", n)
		return nil
	}
	b := d.b[d.off : d.off+n]
	d.off += n
	return b
}
