package avro

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/bench/gen"
	"github.com/sluicehq/sluice/engine"
)

// flakyRegistry serves schema id 1 after answering the first fail requests
// with status.
func flakyRegistry(t *testing.T, schema string, status int, fail int64) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := hits.Add(1)
		w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
		if n <= fail {
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"error_code":%d,"message":"%s"}`, status*100+3, http.StatusText(status))
			return
		}
		if r.URL.Path != "/schemas/ids/1" {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"error_code":40403,"message":"Schema not found"}`)
			return
		}
		fmt.Fprintf(w, `{"schema":%q}`, schema)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// TestRegistryFaults: a registry that fails says nothing about the record, so
// the decoder returns an error wrapping engine.ErrUnavailable (naming the
// HTTP status) for the engine to hold the task and retry, never a
// DecodeError that would dead-letter it; only "no such schema" (404) is a
// DecodeError. Faults within the fetch timeout are retried.
func TestRegistryFaults(t *testing.T) {
	raw, reader := readSchema(t, "traffic.avsc")
	rec := &engine.Record{Value: framed(1, gen.New(3).Next().AppendAvro(nil)), Offset: 42}
	decode := func(d *Decoder, r *engine.Record) error {
		return d.Decode(r, engine.NewRow(d.Schema().Width()))
	}
	unavailable := func(t *testing.T, err error, want string) {
		t.Helper()
		var de *engine.DecodeError
		if !errors.Is(err, engine.ErrUnavailable) || errors.As(err, &de) || !strings.Contains(err.Error(), want) {
			t.Fatalf("error %v: want one wrapping engine.ErrUnavailable, no DecodeError, naming %q", err, want)
		}
	}

	for _, status := range []int{http.StatusServiceUnavailable, http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusUnauthorized} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			srv, hits := flakyRegistry(t, string(raw), status, 1<<30)
			d, err := NewDecoder(reader, ModeRegistry, WithRegistryURL(srv.URL, srv.Client()), WithFetchTimeout(300*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			unavailable(t, decode(d, rec), fmt.Sprintf("HTTP %d", status))
			if hits.Load() < 2 {
				t.Errorf("registry asked %d times within the fetch timeout, want retries", hits.Load())
			}
			// The records behind it fail at once from the cache...
			before := hits.Load()
			start := time.Now()
			unavailable(t, decode(d, rec), fmt.Sprintf("HTTP %d", status))
			if hits.Load() != before || time.Since(start) > 100*time.Millisecond {
				t.Errorf("second record asked the registry again (%d requests) or waited %s", hits.Load()-before, time.Since(start))
			}
		})
	}

	t.Run("recovers", func(t *testing.T) {
		srv, hits := flakyRegistry(t, string(raw), http.StatusServiceUnavailable, 2)
		d, err := NewDecoder(reader, ModeRegistry, WithRegistryURL(srv.URL, srv.Client()), WithFetchTimeout(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if err := decode(d, rec); err != nil {
			t.Fatalf("two 503s then the schema within the fetch timeout: %v", err)
		}
		if hits.Load() != 3 {
			t.Errorf("registry asked %d times, want 3", hits.Load())
		}
	})

	t.Run("recovers-after-ttl", func(t *testing.T) {
		srv, _ := flakyRegistry(t, string(raw), http.StatusServiceUnavailable, 3)
		d, err := NewDecoder(reader, ModeRegistry, WithRegistryURL(srv.URL, srv.Client()), WithFetchTimeout(150*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		unavailable(t, decode(d, rec), "HTTP 503")
		time.Sleep(unavailableTTL + 500*time.Millisecond)
		if err := decode(d, rec); err != nil {
			t.Fatalf("after the registry came back: %v", err)
		}
	})

	t.Run("refused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		d, err := NewDecoder(reader, ModeRegistry, WithRegistryURL("http://user:hunter2@"+addr, nil), WithFetchTimeout(300*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		err = decode(d, rec)
		unavailable(t, err, "connection refused")
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error %q shows the registry's password", err)
		}
	})

	t.Run("not-found", func(t *testing.T) {
		srv, hits := flakyRegistry(t, string(raw), 0, 0)
		d, err := NewDecoder(reader, ModeRegistry, WithRegistryURL(srv.URL, srv.Client()))
		if err != nil {
			t.Fatal(err)
		}
		missing := &engine.Record{Value: framed(7, rec.Value[5:]), Offset: 43}
		err = decode(d, missing)
		var de *engine.DecodeError
		if !errors.As(err, &de) || !errors.Is(err, ErrUnknownSchema) || errors.Is(err, engine.ErrUnavailable) || !strings.Contains(err.Error(), "HTTP 404") {
			t.Fatalf("error %v: want a DecodeError wrapping ErrUnknownSchema naming HTTP 404", err)
		}
		if hits.Load() != 1 {
			t.Errorf("a definitive 404 was asked %d times, want once (not retried)", hits.Load())
		}
		decode(d, missing)
		if hits.Load() != 1 {
			t.Errorf("the 404 was not cached: %d requests", hits.Load())
		}
		if err := decode(d, rec); err != nil {
			t.Fatal(err)
		}
	})
}
