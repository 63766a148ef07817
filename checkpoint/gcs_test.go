package checkpoint

import (
	"net/url"
	"strconv"
	"sync"
	"testing"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

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
