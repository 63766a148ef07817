package checkpoint

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/cockroachdb/pebble"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/checkpoint/storetest"
	"github.com/sluicehq/sluice/engine"
)

// storeOutage is how long the outage case keeps a remote store unreachable.
// The property it checks — a Save during the outage fails with a retryable
// error; a Save with time to spare retries, with capped jittered waits, until
// the service is back and then succeeds — needs the outage to outlast the
// backoff's climb to its cap (50 ms doubling to 1 s: 1.55 s), so that capped
// waits are exercised; 3 s does, and three stores × 20 s would add a minute
// to every test run. -store-outage=20s runs the longer outage.
var storeOutage = flag.Duration("store-outage", 3*time.Second, "how long TestStoreConformance's outage case keeps each remote store down")

// storeFixture is one kind of store under test, reached through
// checkpoint.Open with a URL, as a job file names it.
type storeFixture struct {
	// url is the store URL of a prefix (a path under the bucket, container
	// or directory) that no other case uses.
	url func(prefix string) string
	// overwrite writes data at key under prefix behind the store's back,
	// with no precondition: what a torn write or bit rot leaves.
	overwrite func(t *testing.T, prefix, key string, data []byte)
	// down and up cut the store off and bring it back; nil where there is
	// nothing to cut (a local directory has no outage a retry could ride
	// out).
	down func()
	up   func() error
}

// TestStoreConformance runs one suite over every store sluice checkpoints
// to: a local directory, GCS (fake-gcs-server), S3 (gofakes3) and Azure Blob
// (Azurite), each through its real client over HTTP on loopback, behind a
// proxy that the outage case takes down. The S3 and Azure stores leave
// create-if-absent to the service (If-None-Match: *) and check nothing
// themselves, so the "no overwrite" and "racing writers" cases pass only
// because the fake enforces the precondition: gofakes3 v1.2.0, Azurite and
// fake-gcs-server all do.
func TestStoreConformance(t *testing.T) {
	fixtures := map[string]func(t *testing.T) storeFixture{
		"dir":    dirFixture,
		"gcs":    gcsFixture,
		"s3":     s3Fixture,
		"azblob": azureFixture,
	}
	for _, name := range []string{"dir", "gcs", "s3", "azblob"} {
		t.Run(name, func(t *testing.T) {
			runConformance(t, fixtures[name](t))
		})
	}
}

func dirFixture(t *testing.T) storeFixture {
	root := t.TempDir()
	return storeFixture{
		url: func(prefix string) string { return "file://" + filepath.Join(root, prefix) },
		overwrite: func(t *testing.T, prefix, key string, data []byte) {
			if err := os.WriteFile(filepath.Join(root, prefix, filepath.FromSlash(key)), data, 0o644); err != nil {
				t.Fatal(err)
			}
		},
	}
}

func gcsFixture(t *testing.T) storeFixture {
	fake := startFakeGCS(t)
	proxy := storetest.StartProxy(t, fmt.Sprintf("127.0.0.1:%d", fake.port))
	t.Setenv("STORAGE_EMULATOR_HOST", proxy.Addr)
	raw := newTestClient(t)
	return storeFixture{
		url: func(prefix string) string { return "gs://" + testBucket + "/" + prefix },
		overwrite: func(t *testing.T, prefix, key string, data []byte) {
			w := raw.Bucket(testBucket).Object(prefix + "/" + key).NewWriter(t.Context())
			if _, err := w.Write(data); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		},
		down: proxy.Down,
		up:   proxy.Up,
	}
}

func s3Fixture(t *testing.T) storeFixture {
	const bucket = "sluice-checkpoints"
	fake := storetest.StartS3(t, bucket)
	proxy := storetest.StartProxy(t, fake.Addr)
	for k, v := range storetest.S3Env() {
		t.Setenv(k, v)
	}
	raw := fake.Client(proxy.Addr)
	return storeFixture{
		url: func(prefix string) string { return storetest.S3URL(proxy.Addr, bucket, prefix) },
		overwrite: func(t *testing.T, prefix, key string, data []byte) {
			_, err := raw.PutObject(t.Context(), &s3.PutObjectInput{
				Bucket: aws.String(bucket), Key: aws.String(prefix + "/" + key), Body: bytes.NewReader(data),
			})
			if err != nil {
				t.Fatal(err)
			}
		},
		down: proxy.Down,
		up:   proxy.Up,
	}
}

func azureFixture(t *testing.T) storeFixture {
	const ctr = "sluice-checkpoints"
	az := storetest.StartAzurite(t, ctr)
	proxy := storetest.StartProxy(t, az.Addr)
	for k, v := range storetest.AzureEnv(proxy.Addr) {
		t.Setenv(k, v)
	}
	raw := az.Container(proxy.Addr, ctr)
	return storeFixture{
		url: func(prefix string) string { return "azblob://" + ctr + "/" + prefix },
		overwrite: func(t *testing.T, prefix, key string, data []byte) {
			// Without Content-MD5, as a writer that bypasses the store
			// would leave it: only the format's checksum can tell.
			_, err := raw.NewBlockBlobClient(prefix+"/"+key).Upload(t.Context(), streaming.NopCloser(bytes.NewReader(data)), nil)
			if err != nil {
				t.Fatal(err)
			}
		},
		down: proxy.Down,
		up:   proxy.Up,
	}
}

func openFixture(t *testing.T, f storeFixture, prefix string, opts ...Option) *Checkpointer {
	t.Helper()
	c, err := Open(t.Context(), f.url(prefix), append([]Option{WithLogger(testLogger(t))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func runConformance(t *testing.T, f storeFixture) {
	t.Run("store", func(t *testing.T) {
		testStore(t, openFixture(t, f, "store").Store())
	})
	t.Run("checkpointer", func(t *testing.T) {
		testCheckpointer(t, openFixture(t, f, "prod/checkpoints"), func(t *testing.T, key string, data []byte) {
			f.overwrite(t, "prod/checkpoints", key, data)
		})
	})
	t.Run("two writers", func(t *testing.T) {
		// Two pods that both believe they are job-0 (a zombie and its
		// replacement), each with its own client, write one seq at once.
		cps := [2]*Checkpointer{openFixture(t, f, "race"), openFixture(t, f, "race")}
		for round := range uint64(5) {
			var errs [2]error
			var wg sync.WaitGroup
			for i, c := range cps {
				cp := &engine.Checkpoint{Job: "job", Pod: "job-0", Seq: round, Time: int64(i + 1)}
				wg.Go(func() { _, _, errs[i] = c.Save(t.Context(), cp) })
			}
			wg.Wait()
			winner := -1
			for i, err := range errs {
				switch {
				case err == nil && winner < 0:
					winner = i
				case err == nil:
					t.Fatalf("round %d: both writers succeeded", round)
				case !errors.Is(err, ErrExists) || isRetryable(err):
					t.Fatalf("round %d: writer %d: err = %v, want a non-retryable ErrExists", round, i, err)
				}
			}
			got, err := cps[0].Load(t.Context(), Key("job", "job-0", round))
			if winner < 0 || err != nil || got.Time != int64(winner+1) {
				t.Fatalf("round %d: winner %d, Load = %+v, %v", round, winner, got, err)
			}
		}
	})
	t.Run("state", func(t *testing.T) {
		testStateOnStore(t, openFixture(t, f, "state").Store())
	})
	t.Run("state gc", func(t *testing.T) {
		testStateGC(t, openFixture(t, f, "stategc"))
	})
	t.Run("outlives open context", func(t *testing.T) {
		// A worker opens its store with the process's signal context,
		// which ends on SIGTERM; the drain that follows still writes its
		// final checkpoint. A client that kept that context would fail it.
		openCtx, cancel := context.WithCancel(t.Context())
		c, err := Open(openCtx, f.url("outlives"), WithLogger(testLogger(t)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		cancel()
		ctx := t.Context()
		key, _, err := c.Save(ctx, &engine.Checkpoint{Job: "job", Pod: "job-0", Seq: 1, Time: 7})
		if err != nil {
			t.Fatalf("save after the open context ended: %v", err)
		}
		if cp, err := c.Load(ctx, key); err != nil || cp.Time != 7 {
			t.Fatalf("load after the open context ended: %+v, %v", cp, err)
		}
	})
	if f.down != nil {
		t.Run("outage", func(t *testing.T) { testOutage(t, f) })
	}
}

var stateKey = regexp.MustCompile(`^[0-9a-f]{4}/job/state/[0-9a-f]{64}\.(state|sst)$`)

// testStateOnStore snapshots a Pebble database into s twice (the second
// snapshot shares the first's unchanged sstables) and restores the second.
func testStateOnStore(t *testing.T, s Store) {
	ctx := t.Context()
	dir := t.TempDir()
	rec := &recordingStore{Store: s}
	st := NewState(rec, WithStateThreshold(16<<10))
	db, err := pebble.Open(filepath.Join(dir, "db"), &pebble.Options{Logger: pebbleLogger{t}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r := rand.New(rand.NewPCG(3, 3))
	fillDB(t, db, 0, 2000, r)
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Snapshot(ctx, db, dir, "job"); err != nil {
		t.Fatal(err)
	}
	first := rec.take(sharedSuffix)
	fillDB(t, db, 2000, 4000, r)
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	fillDB(t, db, 4000, 4050, r) // only in the WAL
	ref, err := st.Snapshot(ctx, db, dir, "job")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := st.Objects(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	shared := 0
	for _, k := range first {
		for _, o := range objs {
			if o == k {
				shared++
			}
		}
	}
	if len(first) == 0 || shared == 0 {
		t.Fatalf("the first snapshot wrote %d sstables, the second refers to %d of them: want some shared", len(first), shared)
	}
	for _, k := range objs {
		if !stateKey.MatchString(k) {
			t.Fatalf("state object key %q: want <4 hex>/job/state/<sha-256>.state or .sst", k)
		}
	}

	// A new process restores the snapshot a checkpoint names.
	restored := filepath.Join(dir, "restored")
	if err := NewState(s).Restore(ctx, ref, restored); err != nil {
		t.Fatal(err)
	}
	db2, err := pebble.Open(restored, &pebble.Options{Logger: pebbleLogger{t}})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	check := rand.New(rand.NewPCG(3, 3))
	val := make([]byte, 200)
	for i := range 4050 {
		for j := range val {
			val[j] = byte(check.Uint32())
		}
		v, closer, err := db2.Get(fmt.Appendf(nil, "key-%08d", i))
		if err != nil {
			t.Fatalf("key %d after restore: %v", i, err)
		}
		if !bytes.Equal(v, val) {
			t.Fatalf("key %d after restore: wrong value", i)
		}
		closer.Close()
	}
	t.Logf("state: %d objects in the second snapshot, %d shared with the first; 4050 keys restored", len(objs), shared)
}

// testOutage takes the store down while a pod checkpoints: the Save of the
// interval fails with a retryable error, and a Save given time retries until
// the store is back.
func testOutage(t *testing.T, f storeFixture) {
	outage := *storeOutage
	reg := prometheus.NewRegistry()
	c := openFixture(t, f, "outage", WithRegisterer(reg),
		WithBackoff(Backoff{Initial: 50 * time.Millisecond, Max: time.Second, Attempts: 0}))
	ctx := t.Context()
	cp := func(seq uint64) *engine.Checkpoint {
		cp := sizeJob(10, 6, seq)
		cp.Job, cp.Pod, cp.Seq = "job", "job-0", seq
		return cp
	}
	if _, _, err := c.Save(ctx, cp(1)); err != nil {
		t.Fatal(err)
	}

	f.down()
	down := time.Now()
	restarted := make(chan error, 1)
	go func() {
		time.Sleep(outage)
		restarted <- f.up()
	}()

	// An interval's Save while the store is down fails, and says that it
	// may succeed later; the engine commits nothing and tries again at
	// the next interval.
	short, cancel := context.WithTimeout(ctx, min(outage/2, 2*time.Second))
	_, _, err := c.Save(short, cp(2))
	cancel()
	if err == nil || !isRetryable(err) || errors.Is(err, ErrExists) || engine.IsPermanent(err) {
		t.Fatalf("Save during the outage: err = %v, want a retryable error", err)
	}
	t.Logf("Save during the outage: %v", err)

	// The next one keeps retrying until the store is back.
	long, cancel := context.WithTimeout(ctx, outage+30*time.Second)
	defer cancel()
	key, _, err := c.Save(long, cp(2))
	if err != nil {
		t.Fatalf("Save across the outage: %v", err)
	}
	if err := <-restarted; err != nil {
		t.Fatal(err)
	}
	back := time.Since(down)
	t.Logf("store down for %v; Save succeeded %v after the cut", outage, back.Round(time.Millisecond))
	if back < outage {
		t.Fatalf("Save succeeded after %v, before the store was back (%v)", back, outage)
	}

	got, latest, err := c.LoadLatest(ctx, "job", "job-0")
	if err != nil || latest != key || got.Seq != 2 {
		t.Fatalf("LoadLatest after the outage = %v, %q, %v; want seq 2 at %q", got, latest, err, key)
	}
	if n := metricValue(t, c.m.failures.WithLabelValues("job", "save")); n != 1 {
		t.Errorf("sluice_checkpoint_failures_total{op=save} = %v, want 1", n)
	}
	if n := metricValue(t, c.m.retries.WithLabelValues("put")); n < 2 {
		t.Errorf("sluice_checkpoint_retries_total{op=put} = %v, want several", n)
	}
	if ts := metricValue(t, c.m.lastSuccess.WithLabelValues("job")); time.Since(time.Unix(int64(ts), 0)) > time.Minute {
		t.Errorf("sluice_checkpoint_last_success_timestamp_seconds = %v, not recent", ts)
	}
}
