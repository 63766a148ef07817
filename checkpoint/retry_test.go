package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
)

func TestIsRetryable(t *testing.T) {
	connRefused := &url.Error{Op: "Post", URL: "http://x", Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"500", &googleapi.Error{Code: 500}, true},
		{"503 wrapped", fmt.Errorf("checkpoint: put k: %w", &googleapi.Error{Code: 503}), true},
		{"429", &googleapi.Error{Code: 429}, true},
		{"408", &googleapi.Error{Code: 408}, true},
		{"412 precondition", classify(&googleapi.Error{Code: 412}), false},
		{"404", classify(&googleapi.Error{Code: 404}), false},
		{"400", &googleapi.Error{Code: 400}, false},
		{"403", &googleapi.Error{Code: 403}, false},
		{"connection refused", connRefused, true},
		{"connection reset", &url.Error{Op: "Post", URL: "http://x", Err: syscall.ECONNRESET}, true},
		{"unexpected EOF", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{"attempt timed out", errors.Join(&url.Error{Op: "Post", URL: "http://x", Err: context.DeadlineExceeded}, errAttemptTimeout), true},
		{"caller's deadline", &url.Error{Op: "Post", URL: "http://x", Err: context.DeadlineExceeded}, false},
		{"cancelled", &url.Error{Op: "Post", URL: "http://x", Err: context.Canceled}, false},
		{"exists", fmt.Errorf("x: %w", ErrExists), false},
		{"corrupt", &CorruptError{}, false},
		{"plain", errors.New("something"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := isRetryable(tc.err); got != tc.want {
				t.Errorf("isRetryable(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: 2 * time.Second}
	for _, tc := range []struct {
		retry    int
		min, max time.Duration
	}{
		{0, 50 * time.Millisecond, 100 * time.Millisecond},
		{1, 100 * time.Millisecond, 200 * time.Millisecond},
		{4, 800 * time.Millisecond, 1600 * time.Millisecond},
		{5, time.Second, 2 * time.Second},  // capped
		{62, time.Second, 2 * time.Second}, // no overflow
	} {
		for range 100 {
			if d := b.delay(tc.retry); d < tc.min || d > tc.max {
				t.Fatalf("delay(%d) = %v, want in [%v, %v]", tc.retry, d, tc.min, tc.max)
			}
		}
	}
}

// faultyTransport sits between the storage client and fake-gcs-server and
// decides, request by request, to answer with an error status, to hang, or
// to forward the request and lose the response.
type faultyTransport struct {
	mu    sync.Mutex // guards log and n
	log   []string
	n     int
	fault func(n int, r *http.Request) fault
}

type fault struct {
	status int  // answer with this status instead of forwarding
	lose   bool // forward, then drop the response as if the connection broke
	hang   bool // never answer, until the request's context is done
}

func (f *faultyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	f.mu.Lock()
	n := f.n
	f.n++
	f.log = append(f.log, r.Method)
	f.mu.Unlock()
	var flt fault
	if f.fault != nil {
		flt = f.fault(n, r)
	}
	switch {
	case flt.hang:
		<-r.Context().Done()
		return nil, r.Context().Err()
	case flt.status != 0:
		if r.Body != nil {
			r.Body.Close()
		}
		return &http.Response{StatusCode: flt.status, Status: http.StatusText(flt.status), Header: http.Header{},
			Body: io.NopCloser(strings.NewReader(`{"error":{"code":` + fmt.Sprint(flt.status) + `}}`)), Request: r}, nil
	}
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil || !flt.lose {
		return resp, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return nil, &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
}

func (f *faultyTransport) requests() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.log, " ")
}

// TestGCSRetries checks what the GCS store retries and what it does not,
// with faults injected between the real client and fake-gcs-server.
func TestGCSRetries(t *testing.T) {
	fake := startFakeGCS(t)
	for _, tc := range []struct {
		name     string
		existing string // bytes already at the key
		fault    func(n int, r *http.Request) fault
		wantErr  error // nil, ErrExists, or errRetryable for "a retryable error"
		want     string
	}{
		{name: "503 then created", fault: func(n int, _ *http.Request) fault {
			return fault{status: map[int]int{0: 503, 1: 503}[n]}
		}, want: "POST POST POST"},
		{name: "429 then created", fault: func(n int, _ *http.Request) fault {
			return fault{status: map[int]int{0: 429}[n]}
		}, want: "POST POST"},
		{name: "exists is not retried", existing: "other", wantErr: ErrExists, want: "POST"},
		{name: "400 is not retried", fault: func(int, *http.Request) fault { return fault{status: 400} }, wantErr: errNotRetryable, want: "POST"},
		{name: "attempts run out", fault: func(int, *http.Request) fault { return fault{status: 503} }, wantErr: errRetryable, want: "POST POST POST POST"},
		// The first upload reaches the server, its response is lost: the
		// retry finds the object, reads it, and it is ours.
		{name: "lost response", fault: func(n int, _ *http.Request) fault { return fault{lose: n == 0} }, want: "POST POST GET"},
		// A silent server: the attempt times out and is tried again.
		{name: "hung attempt", fault: func(n int, _ *http.Request) fault { return fault{hang: n == 0} }, want: "POST POST"},
		// Between two attempts another writer creates the object: the
		// retry finds bytes that are not ours and reports ErrExists.
		{name: "lost race after a retry", fault: func(n int, _ *http.Request) fault {
			if n == 0 {
				fake.srv.CreateObject(fakestorage.Object{ObjectAttrs: fakestorage.ObjectAttrs{BucketName: testBucket, Name: "retries/lost-race-after-a-retry/key"}, Content: []byte("theirs")})
				return fault{status: 503}
			}
			return fault{}
		}, wantErr: ErrExists, want: "POST POST GET"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ft := &faultyTransport{}
			client, err := storage.NewClient(t.Context(), storage.WithJSONReads(), option.WithHTTPClient(&http.Client{Transport: ft}))
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			prefix := "retries/" + strings.ReplaceAll(tc.name, " ", "-")
			g := NewGCS(client, testBucket, prefix, WithLogger(testLogger(t)),
				WithBackoff(Backoff{Initial: time.Millisecond, Max: 10 * time.Millisecond, Attempts: 4, AttemptTimeout: 300 * time.Millisecond}))
			if tc.existing != "" {
				if err := g.Put(t.Context(), "key", []byte(tc.existing)); err != nil {
					t.Fatal(err)
				}
			}
			ft.mu.Lock()
			ft.n, ft.log, ft.fault = 0, nil, tc.fault
			ft.mu.Unlock()

			err = g.Put(t.Context(), "key", []byte("ours"))
			requests := ft.requests()
			switch tc.wantErr {
			case nil:
				if err != nil {
					t.Fatalf("Put: %v", err)
				}
				if got, err := g.Get(t.Context(), "key"); err != nil || string(got) != "ours" {
					t.Fatalf("Get = %q, %v", got, err)
				}
			case errRetryable, errNotRetryable:
				if err == nil || isRetryable(err) != (tc.wantErr == errRetryable) {
					t.Fatalf("Put: err = %v (retryable %v), want %v", err, isRetryable(err), tc.wantErr)
				}
			default:
				if !errors.Is(err, tc.wantErr) || isRetryable(err) {
					t.Fatalf("Put: err = %v, want %v", err, tc.wantErr)
				}
			}
			if got := requests; got != tc.want {
				t.Errorf("requests %q, want %q", got, tc.want)
			}
		})
	}

	t.Run("context ends the retries", func(t *testing.T) {
		ft := &faultyTransport{fault: func(int, *http.Request) fault { return fault{status: 503} }}
		client, err := storage.NewClient(t.Context(), storage.WithJSONReads(), option.WithHTTPClient(&http.Client{Transport: ft}))
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		g := NewGCS(client, testBucket, "retries/ctx", WithLogger(testLogger(t)), WithBackoff(Backoff{Initial: 20 * time.Millisecond, Max: 50 * time.Millisecond, Attempts: 0}))
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		err = g.Put(ctx, "key", []byte("x"))
		if err == nil || !isRetryable(err) {
			t.Fatalf("Put: err = %v, want the last (retryable) error", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("Put returned %v after its context ended", d)
		}
	})
}

var (
	errRetryable    = errors.New("a retryable error")
	errNotRetryable = errors.New("an error that is not retryable")
)
