package checkpoint

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble"

	"github.com/sluicehq/sluice/engine"
)

// recordingStore remembers the keys Put was called with.
type recordingStore struct {
	Store
	mu   sync.Mutex // guards puts
	puts []string
}

func (s *recordingStore) Put(ctx context.Context, key string, data []byte) error {
	s.mu.Lock()
	s.puts = append(s.puts, key)
	s.mu.Unlock()
	return s.Store.Put(ctx, key, data)
}

func (s *recordingStore) take(suffix string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, k := range s.puts {
		if strings.HasSuffix(k, suffix) {
			out = append(out, k)
		}
	}
	s.puts = nil
	return out
}

// pebbleLogger sends Pebble's log to the test's.
type pebbleLogger struct{ t *testing.T }

func (l pebbleLogger) Infof(format string, args ...any)  { l.t.Logf(format, args...) }
func (l pebbleLogger) Errorf(format string, args ...any) { l.t.Logf(format, args...) }
func (l pebbleLogger) Fatalf(format string, args ...any) { l.t.Fatalf(format, args...) }

func fillDB(t *testing.T, db *pebble.DB, from, to int, r *rand.Rand) {
	t.Helper()
	val := make([]byte, 200)
	for i := from; i < to; i++ {
		for j := range val {
			val[j] = byte(r.Uint32())
		}
		if err := db.Set(fmt.Appendf(nil, "key-%08d", i), val, pebble.NoSync); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStateIncremental snapshots a task's Pebble state twice: the second
// snapshot writes only the sstables that are new and refers to the others,
// and restoring it gives back every key, flushed or still in the WAL.
func TestStateIncremental(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	d, err := NewDir(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	store := &recordingStore{Store: d}
	st := NewState(store, WithStateThreshold(16<<10))

	db, err := pebble.Open(filepath.Join(dir, "db"), &pebble.Options{Logger: pebbleLogger{t}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r := rand.New(rand.NewPCG(1, 1))

	fillDB(t, db, 0, 5000, r)
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	ref1, err := st.Snapshot(ctx, db, dir, "job")
	if err != nil {
		t.Fatal(err)
	}
	shared1 := store.take(".sst")
	if len(shared1) == 0 {
		t.Fatal("the first snapshot wrote no shared sstable")
	}

	fillDB(t, db, 5000, 10000, r)
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	fillDB(t, db, 10000, 10100, r) // only in the memtable and WAL
	ref2, err := st.Snapshot(ctx, db, dir, "job")
	if err != nil {
		t.Fatal(err)
	}
	shared2 := store.take(".sst")
	for _, k := range shared2 {
		if slices.Contains(shared1, k) {
			t.Errorf("the second snapshot wrote %s again", k)
		}
	}
	objs, err := st.Objects(ctx, ref2)
	if err != nil {
		t.Fatal(err)
	}
	reused := 0
	for _, k := range shared1 {
		if slices.Contains(objs, k) {
			reused++
		}
	}
	t.Logf("snapshot 1: %d shared sstables; snapshot 2: %d new, %d reused; objects %d", len(shared1), len(shared2), reused, len(objs))
	if len(shared2) == 0 || reused == 0 {
		t.Fatalf("snapshot 2 wrote %d sstables and reused %d, want some of each", len(shared2), reused)
	}

	// A process that starts afresh knows nothing it uploaded: its Puts of
	// the same sstables find them there and it goes on.
	if _, err := NewState(store, WithStateThreshold(16<<10)).Snapshot(ctx, db, dir, "job"); err != nil {
		t.Fatalf("Snapshot by a new State: %v", err)
	}

	// The reference travels in a checkpoint.
	c := New(d)
	cp := &engine.Checkpoint{Job: "job", Pod: "job-0", Seq: 1, Tasks: []engine.TaskState{
		{Task: engine.TaskID{Topic: "t", Partition: 0}, Offset: 10100, State: ref2},
	}}
	key, _, err := c.Save(ctx, cp)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Load(ctx, key)
	if err != nil || got.Tasks[0].State != ref2 {
		t.Fatalf("Load = %+v, %v", got, err)
	}

	restored := filepath.Join(dir, "restored")
	if err := st.Restore(ctx, got.Tasks[0].State, restored); err != nil {
		t.Fatal(err)
	}
	db2, err := pebble.Open(restored, &pebble.Options{Logger: pebbleLogger{t}})
	if err != nil {
		t.Fatal(err)
	}
	check := rand.New(rand.NewPCG(1, 1))
	val := make([]byte, 200)
	for i := range 10100 {
		for j := range val {
			val[j] = byte(check.Uint32())
		}
		v, closer, err := db2.Get(fmt.Appendf(nil, "key-%08d", i))
		if err != nil {
			t.Fatalf("key %d after restore: %v", i, err)
		}
		if string(v) != string(val) {
			t.Fatalf("key %d after restore: wrong value", i)
		}
		closer.Close()
	}
	if err := db2.Close(); err != nil {
		t.Fatal(err)
	}

	t.Run("corrupt shared object", func(t *testing.T) {
		k := shared1[0]
		if err := os.WriteFile(filepath.Join(dir, "store", filepath.FromSlash(k)), []byte("not an sstable"), 0o644); err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(dir, "restored-2")
		err := st.Restore(ctx, ref1, target)
		if ce := (*CorruptError)(nil); !errors.As(err, &ce) || ce.Key != k {
			t.Fatalf("Restore: err = %v, want a *CorruptError for %s", err, k)
		}
		if _, err := os.Stat(target); !os.IsNotExist(err) {
			t.Fatalf("a failed Restore left %s behind (%v)", target, err)
		}
	})
}

func TestStateManifest(t *testing.T) {
	files := []stateFile{
		{name: "OPTIONS-000003", size: 3, data: []byte("abc")},
		{name: "000005.sst", size: 9, key: contentKey("job", sha256.Sum256([]byte("x")), sharedSuffix)},
	}
	for i := range files {
		if files[i].data != nil {
			files[i].sum = sha256.Sum256(files[i].data)
		}
	}
	b := encodeManifest("job", files)
	got, err := decodeManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].name != "000005.sst" || got[0].key != files[1].key || string(got[1].data) != "abc" || got[1].sum != files[0].sum {
		t.Fatalf("decodeManifest = %+v", got)
	}
	for i := range len(b) {
		if _, err := decodeManifest(b[:i]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d: err = %v, want ErrCorrupt", i, err)
		}
	}
	if _, err := decodeManifest(Encode(&engine.Checkpoint{})); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a checkpoint read as a manifest: err = %v, want ErrCorrupt", err)
	}
}

func FuzzStateManifestDecode(f *testing.F) {
	f.Add(encodeManifest("job", []stateFile{{name: "MANIFEST-000001", size: 1, data: []byte{1}}, {name: "000004.sst", size: 5, key: "abcd/job/state/x.sst"}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) >= headerSize+trailerSize { // past the checksum, to the fields
			data = sealFrame(slices.Clone(data[:len(data)-trailerSize]))
		}
		files, err := decodeManifest(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) || files != nil {
				t.Fatalf("decodeManifest = %v, %v", files, err)
			}
			return
		}
		again, err := decodeManifest(encodeManifest("job", files))
		if err != nil || len(again) != len(files) {
			t.Fatalf("re-encoded manifest: %d files, %v; want %d", len(again), err, len(files))
		}
	})
}
