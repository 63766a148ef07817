package checkpoint

import (
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/sluicehq/sluice/engine"
)

// fakeClock is a clock a test moves by hand.
type fakeClock struct {
	mu  sync.Mutex // guards now
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// testStateGC: state objects that no retained checkpoint of any pod of the
// job refers to are deleted once they have been unreferenced for the grace
// period; objects still referenced, objects a writer has uploaded and not yet
// referenced, and other jobs' objects stay.
func testStateGC(t *testing.T, c *Checkpointer) {
	ctx := t.Context()
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	const grace = time.Hour
	c.stateGrace, c.now = grace, clock.Now
	st := NewState(c.Store(), WithStateThreshold(4<<10))
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(5, 5))
	snapshot := func(name, job string, n int) (string, []string) {
		t.Helper()
		db, err := pebble.Open(filepath.Join(dir, name), &pebble.Options{Logger: pebbleLogger{t}})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		fillDB(t, db, 0, n, r)
		if err := db.Flush(); err != nil {
			t.Fatal(err)
		}
		ref, err := st.Snapshot(ctx, db, dir, job)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := st.Objects(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) < 2 {
			t.Fatalf("snapshot %s: %d objects, want a manifest and shared sstables", name, len(objs))
		}
		return ref, objs
	}
	save := func(pod string, seq uint64, ref string) {
		t.Helper()
		cp := &engine.Checkpoint{Job: "job", Pod: pod, Seq: seq, Time: clock.Now().UnixMicro(),
			Tasks: []engine.TaskState{{Task: engine.TaskID{Topic: "t", Partition: 0}, Offset: int64(seq), State: ref}}}
		if _, _, err := c.Save(ctx, cp); err != nil {
			t.Fatal(err)
		}
	}
	present := func(keys []string) (n int) {
		t.Helper()
		for _, k := range keys {
			if _, err := c.Store().Get(ctx, k); err == nil {
				n++
			}
		}
		return n
	}

	old, oldObjs := snapshot("a1", "job", 500)      // pod a's state, then replaced
	cur, curObjs := snapshot("a2", "job", 700)      // pod a's state now
	b, bObjs := snapshot("b", "job", 300)           // pod b's state
	pending, pendObjs := snapshot("x", "job", 400)  // uploaded, referenced later
	_, orphanObjs := snapshot("orphan", "job", 350) // a snapshot whose checkpoint never came
	_, otherObjs := snapshot("other", "other", 300) // another job's
	save("job-a", 1, old)
	for seq := uint64(2); seq <= 4; seq++ {
		save("job-a", seq, cur)
	}
	save("job-b", 1, b)
	// Pod a's checkpoint 1 falls out of the retained three.
	if err := c.Collect(ctx, "job", "job-a", nil); err != nil {
		t.Fatal(err)
	}

	// First sight: everything unreferenced is young.
	if n, err := c.CollectState(ctx, "job"); err != nil || n != 0 {
		t.Fatalf("CollectState at first sight deleted %d objects, %v; want none within the grace period", n, err)
	}
	// The pending snapshot's checkpoint is written within the grace period.
	clock.Add(grace / 2)
	save("job-b", 2, pending)
	clock.Add(grace / 2)
	late, lateObjs := snapshot("late", "job", 450) // uploaded just now
	n, err := c.CollectState(ctx, "job")
	if err != nil {
		t.Fatal(err)
	}

	only := func(objs, except []string) []string {
		return slices.DeleteFunc(slices.Clone(objs), func(k string) bool { return slices.Contains(except, k) })
	}
	gone := append(only(oldObjs, curObjs), orphanObjs...)
	if got := present(gone); got != 0 || n != len(gone) {
		t.Errorf("after the grace period: %d of %d unreferenced objects left, %d deleted", got, len(gone), n)
	}
	for name, objs := range map[string][]string{"current": curObjs, "pod b's": bObjs, "pending, since referenced": pendObjs, "just uploaded": lateObjs, "another job's": otherObjs} {
		if got := present(objs); got != len(objs) {
			t.Errorf("%s snapshot: %d of %d objects left, want all", name, got, len(objs))
		}
	}
	for _, ref := range []string{cur, b, pending, late} {
		if err := st.Restore(ctx, ref, filepath.Join(dir, "restore-"+strings.ReplaceAll(ref, "/", "_"))); err != nil {
			t.Errorf("restore %s after collection: %v", ref, err)
		}
	}
	t.Logf("state gc: %d objects deleted (%d of a replaced snapshot, %d of an orphan); %d kept", n, len(gone)-len(orphanObjs), len(orphanObjs),
		len(curObjs)+len(bObjs)+len(pendObjs)+len(lateObjs))

}

// TestStateTrustExpires: State relies on its memory of an uploaded sstable
// for half the grace period only; after that a snapshot writes the file
// again, so that an object a collector deleted in the meantime is back
// before a checkpoint names it.
func TestStateTrustExpires(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	store, err := NewDir(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordingStore{Store: store}
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	st := NewState(rec, WithStateThreshold(4<<10), WithStateGrace(time.Hour))
	st.now = clock.Now
	db, err := pebble.Open(filepath.Join(dir, "db"), &pebble.Options{Logger: pebbleLogger{t}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fillDB(t, db, 0, 500, rand.New(rand.NewPCG(1, 1)))
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	ref, err := st.Snapshot(ctx, db, dir, "job")
	if err != nil {
		t.Fatal(err)
	}
	shared := rec.take(sharedSuffix)
	if len(shared) == 0 {
		t.Fatal("no shared sstable")
	}
	clock.Add(29 * time.Minute)
	if _, err := st.Snapshot(ctx, db, dir, "job"); err != nil {
		t.Fatal(err)
	}
	if again := rec.take(sharedSuffix); len(again) != 0 {
		t.Fatalf("within half the grace period a snapshot wrote %v again", again)
	}
	// A collector deleted the objects (say, every checkpoint naming them
	// failed); half an hour after its upload the State writes them again.
	objs, err := st.Objects(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range objs {
		store.Delete(ctx, k)
	}
	clock.Add(time.Minute)
	ref, err = st.Snapshot(ctx, db, dir, "job")
	if err != nil {
		t.Fatal(err)
	}
	if again := rec.take(sharedSuffix); len(again) != len(shared) {
		t.Fatalf("after half the grace period a snapshot wrote %v, want %v again", again, shared)
	}
	if err := NewState(store).Restore(ctx, ref, filepath.Join(dir, "restored")); err != nil {
		t.Fatal(err)
	}
}
