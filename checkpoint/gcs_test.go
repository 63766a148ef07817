package checkpoint

import (
	"context"
	"errors"
	"flag"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sluicehq/sluice/engine"
)

var gcsOutage = flag.Duration("gcs-outage", 20*time.Second, "how long TestGCSCheckpointStore stops the GCS server (3s with -short)")

const testBucket = "sluice-checkpoints"

// fakeGCS is fake-gcs-server on a loopback port, keeping its objects in a
// directory so that they outlive a stop and restart on the same port.
type fakeGCS struct {
	t    *testing.T
	root string
	port uint16
	mu   sync.Mutex // guards srv
	srv  *fakestorage.Server
}

func startFakeGCS(t *testing.T) *fakeGCS {
	f := &fakeGCS{t: t, root: t.TempDir()}
	if err := f.start(); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(f.srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.ParseUint(u.Port(), 10, 16)
	if err != nil {
		t.Fatal(err)
	}
	f.port = uint16(p)
	f.srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: testBucket})
	// The real client, over HTTP, as in production with the emulator.
	t.Setenv("STORAGE_EMULATOR_HOST", u.Host)
	t.Cleanup(f.stop)
	return f
}

func (f *fakeGCS) start() error {
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme: "http", Host: "127.0.0.1", Port: f.port, StorageRoot: f.root,
	})
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.srv = srv
	f.mu.Unlock()
	return nil
}

func (f *fakeGCS) stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.srv != nil {
		f.srv.Stop()
		f.srv = nil
	}
}

func newTestClient(t *testing.T) *storage.Client {
	t.Helper()
	c, err := storage.NewClient(t.Context(), storage.WithJSONReads())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestGCSCheckpointStore runs the store and checkpointer cases against
// fake-gcs-server through the real storage client, then two writers racing
// for one checkpoint and an outage of the server.
func TestGCSCheckpointStore(t *testing.T) {
	fake := startFakeGCS(t)
	raw := newTestClient(t) // writes behind the store's back, with no precondition
	log := testLogger(t)

	t.Run("store", func(t *testing.T) {
		testStore(t, NewGCS(newTestClient(t), testBucket, "conformance/", WithLogger(log)))
	})

	t.Run("checkpointer", func(t *testing.T) {
		c, err := Open(t.Context(), "gs://"+testBucket+"/prod/checkpoints", WithLogger(log))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		testCheckpointer(t, c, func(t *testing.T, key string, data []byte) {
			w := raw.Bucket(testBucket).Object("prod/checkpoints/" + key).NewWriter(t.Context())
			if _, err := w.Write(data); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		})
	})

	t.Run("two writers", func(t *testing.T) {
		// Two pods that both believe they are job-0 (a zombie and its
		// replacement), each with its own client, write seq 1 at once.
		var cps [2]*Checkpointer
		for i := range cps {
			c, err := Open(t.Context(), "gs://"+testBucket+"/race", WithStorageClient(newTestClient(t)), WithLogger(log))
			if err != nil {
				t.Fatal(err)
			}
			cps[i] = c
		}
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

	t.Run("outage", func(t *testing.T) {
		outage := *gcsOutage
		if testing.Short() {
			outage = 3 * time.Second
		}
		reg := prometheus.NewRegistry()
		c, err := Open(t.Context(), "gs://"+testBucket+"/outage", WithLogger(log), WithRegisterer(reg),
			WithBackoff(Backoff{Initial: 50 * time.Millisecond, Max: time.Second, Attempts: 0}))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx := t.Context()
		cp := func(seq uint64) *engine.Checkpoint {
			cp := sizeJob(10, 6, seq)
			cp.Job, cp.Pod, cp.Seq = "job", "job-0", seq
			return cp
		}
		if _, _, err := c.Save(ctx, cp(1)); err != nil {
			t.Fatal(err)
		}

		fake.stop()
		down := time.Now()
		restarted := make(chan error, 1)
		go func() {
			time.Sleep(outage)
			restarted <- fake.start()
		}()

		// An interval's Save while the server is down fails, and says
		// that it may succeed later; the engine commits nothing and
		// tries again at the next interval.
		short, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, _, err = c.Save(short, cp(2))
		cancel()
		if err == nil || !isRetryable(err) || errors.Is(err, ErrExists) {
			t.Fatalf("Save during the outage: err = %v, want a retryable error", err)
		}
		t.Logf("Save during the outage: %v", err)

		// The next one keeps retrying until the server is back.
		long, cancel := context.WithTimeout(ctx, outage+30*time.Second)
		defer cancel()
		key, _, err := c.Save(long, cp(2))
		if err != nil {
			t.Fatalf("Save across the outage: %v", err)
		}
		if err := <-restarted; err != nil {
			t.Fatalf("restart on port %d: %v", fake.port, err)
		}
		back := time.Since(down)
		t.Logf("server down for %v; Save succeeded %v after the stop", outage, back.Round(time.Millisecond))
		if back < outage {
			t.Fatalf("Save succeeded after %v, before the server was back (%v)", back, outage)
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
	})
}

// metricValue reads one counter or gauge.
func metricValue(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	t.Fatalf("metric %v is neither a counter nor a gauge", c.Desc())
	return 0
}
