package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/sluicehq/sluice/engine"
)

// testStore checks the Store contract; TestStoreConformance runs it on every
// store.
func testStore(t *testing.T, s Store) {
	ctx := t.Context()
	t.Run("put get", func(t *testing.T) {
		if err := s.Put(ctx, "a/b/one", []byte("first")); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, "a/b/one")
		if err != nil || string(got) != "first" {
			t.Fatalf("Get = %q, %v; want first", got, err)
		}
	})
	t.Run("no overwrite", func(t *testing.T) {
		if err := s.Put(ctx, "a/b/one", []byte("second")); !errors.Is(err, ErrExists) {
			t.Fatalf("Put over an existing object: err = %v, want ErrExists", err)
		}
		if got, err := s.Get(ctx, "a/b/one"); err != nil || string(got) != "first" {
			t.Fatalf("after a refused Put, Get = %q, %v; want first", got, err)
		}
	})
	t.Run("empty object", func(t *testing.T) {
		if err := s.Put(ctx, "a/empty", nil); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Get(ctx, "a/empty"); err != nil || len(got) != 0 {
			t.Fatalf("Get = %q, %v; want empty", got, err)
		}
	})
	t.Run("racing writers", func(t *testing.T) {
		const writers = 8
		errs := make([]error, writers)
		var wg sync.WaitGroup
		for i := range writers {
			wg.Go(func() { errs[i] = s.Put(ctx, "race/key", []byte(fmt.Sprintf("writer %d", i))) })
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("writers %d and %d both succeeded", winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, ErrExists):
				t.Fatalf("writer %d: err = %v, want nil or ErrExists", i, err)
			}
		}
		if winner < 0 {
			t.Fatal("no writer succeeded")
		}
		if got, err := s.Get(ctx, "race/key"); err != nil || string(got) != fmt.Sprintf("writer %d", winner) {
			t.Fatalf("Get = %q, %v; want the winner's (%d) bytes", got, err, winner)
		}
	})
	t.Run("atomic", func(t *testing.T) {
		// A reader racing a writer sees nothing or everything.
		big := make([]byte, 4<<20)
		for i := range big {
			big[i] = byte(i % 251)
		}
		done := make(chan error, 1)
		go func() { done <- s.Put(ctx, "atomic/big", big) }()
		for seen := 0; ; seen++ {
			got, err := s.Get(ctx, "atomic/big")
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(big) || string(got) != string(big) {
				t.Fatalf("read %d bytes of a %d-byte object while it was written", len(got), len(big))
			}
			t.Logf("%d reads before the object appeared", seen)
			break
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		if _, err := s.Get(ctx, "a/none"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get of a missing key: err = %v, want ErrNotFound", err)
		}
		if err := s.Delete(ctx, "a/none"); err != nil {
			t.Fatalf("Delete of a missing key: %v", err)
		}
	})
	t.Run("list delete", func(t *testing.T) {
		got, err := s.List(ctx, "a/")
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		if diff := gocmp.Diff([]string{"a/b/one", "a/empty"}, got); diff != "" {
			t.Fatalf("List (-want +got):\n%s", diff)
		}
		if err := s.Delete(ctx, "a/b/one"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, "a/b/one"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get after Delete: err = %v, want ErrNotFound", err)
		}
		if got, _ := s.List(ctx, "a/b"); len(got) != 0 {
			t.Fatalf("List after Delete = %q, want nothing", got)
		}
		// The key is free again.
		if err := s.Put(ctx, "a/b/one", []byte("again")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("bad keys", func(t *testing.T) {
		for _, k := range []string{"", "/a", "a/", "a//b", "../a", "a/./b", `a\b`, "a/.tmp-x", "a\nb"} {
			if err := s.Put(ctx, k, nil); err == nil {
				t.Errorf("Put(%q) succeeded, want an error", k)
			}
			if _, err := s.Get(ctx, k); err == nil || errors.Is(err, ErrNotFound) {
				t.Errorf("Get(%q): err = %v, want a key error", k, err)
			}
		}
	})
}

// testCheckpointer checks save, restore, corruption, conflicts and garbage
// collection over a store; damage overwrites an object behind the store's
// back.
func testCheckpointer(t *testing.T, c *Checkpointer, damage func(t *testing.T, key string, data []byte)) {
	ctx := t.Context()
	cp := func(seq uint64) *engine.Checkpoint {
		c := sizeJob(2, 3, seq)
		c.Job, c.Pod, c.Seq = "job", "job-0", seq
		return c
	}
	keys := map[uint64]string{}
	t.Run("save load", func(t *testing.T) {
		for seq := uint64(1); seq <= 5; seq++ {
			key, size, err := c.Save(ctx, cp(seq))
			if err != nil {
				t.Fatal(err)
			}
			if key != Key("job", "job-0", seq) || size != len(Encode(cp(seq))) {
				t.Fatalf("Save = %q, %d; want %q, %d", key, size, Key("job", "job-0", seq), len(Encode(cp(seq))))
			}
			keys[seq] = key
		}
		got, err := c.Load(ctx, keys[3])
		if err != nil {
			t.Fatal(err)
		}
		want := cp(3)
		want.Tasks = sortedTasks(want.Tasks)
		if diff := gocmp.Diff(want, got); diff != "" {
			t.Fatalf("Load (-want +got):\n%s", diff)
		}
		got, key, err := c.LoadLatest(ctx, "job", "job-0")
		if err != nil || key != keys[5] || got.Seq != 5 {
			t.Fatalf("LoadLatest = seq %v, %q, %v; want 5, %q", got, key, err, keys[5])
		}
	})
	t.Run("same seq twice", func(t *testing.T) {
		other := cp(5)
		other.Tasks[0].Offset++
		if _, _, err := c.Save(ctx, other); !errors.Is(err, ErrExists) {
			t.Fatalf("second Save of seq 5: err = %v, want ErrExists", err)
		}
		if got, err := c.Load(ctx, keys[5]); err != nil || got.Tasks[0].Offset != sortedTasks(cp(5).Tasks)[0].Offset {
			t.Fatalf("seq 5 after the refused Save: %v, %v", got, err)
		}
	})
	t.Run("corrupt", func(t *testing.T) {
		data := Encode(cp(5))
		data[len(data)/2] ^= 0x10
		damage(t, keys[5], data)
		_, err := c.Load(ctx, keys[5])
		if ce := (*CorruptError)(nil); !errors.Is(err, ErrCorrupt) || !errors.As(err, &ce) || ce.Key != keys[5] {
			t.Fatalf("Load of a damaged object: err = %v, want a *CorruptError for %s", err, keys[5])
		}
		got, key, err := c.LoadLatest(ctx, "job", "job-0")
		if err != nil || key != keys[4] || got.Seq != 4 {
			t.Fatalf("LoadLatest = %v, %q, %v; want seq 4 at %q", got, key, err, keys[4])
		}
	})
	t.Run("truncated", func(t *testing.T) {
		data := Encode(cp(4))
		damage(t, keys[4], data[:len(data)-7])
		if _, err := c.Load(ctx, keys[4]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Load of a truncated object: err = %v, want ErrCorrupt", err)
		}
		got, key, err := c.LoadLatest(ctx, "job", "job-0")
		if err != nil || key != keys[3] || got.Seq != 3 {
			t.Fatalf("LoadLatest = %v, %q, %v; want seq 3 at %q", got, key, err, keys[3])
		}
		got, key, err = c.LoadBefore(ctx, keys[5])
		if err != nil || key != keys[3] || got.Seq != 3 {
			t.Fatalf("LoadBefore(5) = %v, %q, %v; want seq 3 at %q", got, key, err, keys[3])
		}
	})
	t.Run("misplaced", func(t *testing.T) {
		// A sound object under another checkpoint's key is not that checkpoint.
		damage(t, keys[3], Encode(cp(2)))
		if _, err := c.Load(ctx, keys[3]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Load of seq 2's bytes at seq 3's key: err = %v, want ErrCorrupt", err)
		}
		damage(t, keys[3], Encode(cp(3)))
	})
	t.Run("collect", func(t *testing.T) {
		for seq := uint64(6); seq <= 9; seq++ {
			key, _, err := c.Save(ctx, cp(seq))
			if err != nil {
				t.Fatal(err)
			}
			keys[seq] = key
		}
		// Another pod's and another job's checkpoints are not this pod's
		// to collect, however old.
		if _, _, err := c.Save(ctx, &engine.Checkpoint{Job: "job", Pod: "job-1", Seq: 1}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Save(ctx, &engine.Checkpoint{Job: "other", Pod: "job-0", Seq: 1}); err != nil {
			t.Fatal(err)
		}
		// Retain 3 (7, 8, 9); seq 2 is still referenced by a commit.
		if err := c.Collect(ctx, "job", "job-0", []string{keys[2], keys[8]}); err != nil {
			t.Fatal(err)
		}
		all, err := c.Store().List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(all)
		want := []string{keys[2], keys[7], keys[8], keys[9], Key("job", "job-1", 1), Key("other", "job-0", 1)}
		slices.Sort(want)
		if diff := gocmp.Diff(want, all); diff != "" {
			t.Fatalf("objects after Collect (-want +got):\n%s", diff)
		}
		// Later Collects work from what this Checkpointer saved.
		key, _, err := c.Save(ctx, cp(10))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Collect(ctx, "job", "job-0", []string{key}); err != nil {
			t.Fatal(err)
		}
		all, _ = c.Store().List(ctx, "")
		slices.Sort(all)
		want = []string{keys[8], keys[9], key, Key("job", "job-1", 1), Key("other", "job-0", 1)}
		slices.Sort(want)
		if diff := gocmp.Diff(want, all); diff != "" {
			t.Fatalf("objects after the second Collect (-want +got):\n%s", diff)
		}
	})
	t.Run("bad names", func(t *testing.T) {
		for _, c0 := range []engine.Checkpoint{{Job: "", Pod: "p"}, {Job: "a/b", Pod: "p"}, {Job: "j", Pod: ".."}} {
			if _, _, err := c.Save(ctx, &c0); err == nil {
				t.Errorf("Save(job %q, pod %q) succeeded, want an error", c0.Job, c0.Pod)
			}
		}
		if _, err := c.Load(ctx, "job/job-0/1.ckpt"); err == nil {
			t.Error("Load of a key without its hash prefix succeeded")
		}
	})
}

// TestDirStore checks what only a directory store has; the contract every
// store shares is TestStoreConformance's.
func TestDirStore(t *testing.T) {
	root := t.TempDir()
	d, err := NewDir(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Put(t.Context(), "a/b", []byte("x")); err != nil {
		t.Fatal(err)
	}
	t.Run("leftover temporary file", func(t *testing.T) {
		// What a crash between create and link leaves behind.
		if err := os.WriteFile(filepath.Join(root, "a", tempPrefix+"123"), []byte("half"), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := d.List(t.Context(), "")
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range got {
			if filepath.Base(k) == tempPrefix+"123" {
				t.Fatalf("List = %q: lists a temporary file", got)
			}
		}
	})
	t.Run("no temporary files after put", func(t *testing.T) {
		if err := d.Put(t.Context(), "clean/x", []byte("x")); err != nil {
			t.Fatal(err)
		}
		ents, err := os.ReadDir(filepath.Join(root, "clean"))
		if err != nil || len(ents) != 1 || ents[0].Name() != "x" {
			t.Fatalf("directory holds %v, %v; want only x", ents, err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := d.Put(ctx, "c/x", []byte("x")); !errors.Is(err, context.Canceled) {
			t.Fatalf("Put with a cancelled context: err = %v", err)
		}
	})
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestOpenURLs(t *testing.T) {
	for _, u := range []string{"file://host/dir", "file://", "gs:///path", "::", "s3:///x", "s3://b/x?bogus=1",
		"s3://b/x?endpoint=ftp://h", "s3://b/x?path_style=maybe", "azblob:///x", "az://c/x?key=secret", "http://h/x"} {
		if c, err := Open(t.Context(), u); err == nil {
			c.Close()
			t.Errorf("Open(%q) succeeded, want an error", u)
		}
	}
}

func TestKey(t *testing.T) {
	for _, tc := range []struct {
		job, pod string
		seq      uint64
		want     string
	}{
		// Part of the format: these must never change.
		{"orders", "orders-0", 1, "b1c7/orders/orders-0/1.ckpt"},
		{"orders", "orders-0", 2, "b60e/orders/orders-0/2.ckpt"},
		{"tenant-a-firewall", "tenant-a-firewall-3", 86400, "79be/tenant-a-firewall/tenant-a-firewall-3/86400.ckpt"},
	} {
		got := Key(tc.job, tc.pod, tc.seq)
		if got != tc.want {
			t.Errorf("Key(%q, %q, %d) = %q, want %q", tc.job, tc.pod, tc.seq, got, tc.want)
		}
		job, pod, seq, ok := ParseKey(got)
		if !ok || job != tc.job || pod != tc.pod || seq != tc.seq {
			t.Errorf("ParseKey(%q) = %q, %q, %d, %v", got, job, pod, seq, ok)
		}
	}
	for _, k := range []string{"0000/orders/orders-0/1.ckpt", "b1c7/orders/orders-0/01.ckpt", "b1c7/orders/orders-0/1", "orders/orders-0/1.ckpt"} {
		if _, _, _, ok := ParseKey(k); ok {
			t.Errorf("ParseKey(%q) accepted it", k)
		}
	}
}
