package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"google.golang.org/api/googleapi"

	"github.com/sluicehq/sluice/engine/backoff"
)

// Backoff is the retry policy of a remote store: exponential backoff with
// jitter, for retryable errors only.
type Backoff struct {
	// Initial is the wait before the first retry (default 100ms).
	Initial time.Duration
	// Max caps one wait (default 5s).
	Max time.Duration
	// Attempts is the number of tries in all, the first included; 0 means
	// retry until the context is done (default 6).
	Attempts int
	// AttemptTimeout bounds one request, so that a server that accepted the
	// connection and went silent is retried (default 30s).
	AttemptTimeout time.Duration
}

func defaultBackoff() Backoff {
	return Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second, Attempts: 6, AttemptTimeout: 30 * time.Second}
}

// delay is the wait before retry number n (0 for the first retry): sluice's
// one backoff (engine/backoff), a random duration in [d/2, d] where
// d = Initial·2ⁿ capped at Max ("equal jitter": writers that failed together
// spread out, and none retries at once).
func (b Backoff) delay(n int) time.Duration {
	return backoff.Policy{Base: b.Initial, Max: b.Max}.Delay(n)
}

// isRetryable reports whether err is a transient failure of the service or
// the network that the same request may get past: HTTP 408, 429 and 5xx,
// refused or reset connections, timeouts of one attempt. Precondition
// failures (ErrExists), missing objects, corruption, client errors and a
// done caller context are not retryable.
func isRetryable(err error) bool {
	switch {
	case err == nil, errors.Is(err, ErrExists), errors.Is(err, ErrNotFound), errors.Is(err, ErrCorrupt),
		errors.Is(err, context.Canceled):
		return false
	case errors.Is(err, errAttemptTimeout), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return true
	}
	if errors.Is(err, errTransient) {
		return true
	}
	if code := httpStatus(err); code != 0 {
		return code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500
	}
	if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		return !errors.Is(err, context.DeadlineExceeded) // the caller's deadline is final
	}
	if ue := (*url.Error)(nil); errors.As(err, &ue) {
		// The transport failed below HTTP (connection closed mid-request,
		// server went away): nothing was decided, so try again.
		return !errors.Is(err, context.DeadlineExceeded)
	}
	return false
}

// httpStatus is the HTTP status of the response a cloud client's error
// carries (GCS's googleapi.Error, the AWS SDK's smithy response errors,
// Azure's azcore.ResponseError), or 0 when the request got no response.
func httpStatus(err error) int {
	if ae := (*googleapi.Error)(nil); errors.As(err, &ae) {
		return ae.Code
	}
	if re := (*azcore.ResponseError)(nil); errors.As(err, &re) {
		return re.StatusCode
	}
	if he := (interface{ HTTPStatusCode() int })(nil); errors.As(err, &he) {
		return he.HTTPStatusCode()
	}
	return 0
}

// errTransient marks a failure that the same request may get past although
// its status does not say so: an answer with which a service asks for the
// request again (S3's 409 ConditionalRequestConflict), or bytes that did not
// match their checksum on the way.
var errTransient = errors.New("transient failure")

// errAttemptTimeout is the cause set on the context of an attempt that ran
// past Backoff.AttemptTimeout, to tell it apart from the caller's deadline.
var errAttemptTimeout = errors.New("attempt timed out")

// retrier runs operations under a Backoff. It is safe for concurrent use.
type retrier struct {
	policy  Backoff
	onRetry func(op string, attempt int, wait time.Duration, err error)
}

// do calls fn until it succeeds, fails with an error that is not retryable,
// runs out of attempts or ctx is done. The error returned is fn's last
// error, so isRetryable still tells what kind of failure it was.
func (r *retrier) do(ctx context.Context, op string, fn func(ctx context.Context, attempt int) error) error {
	var prev error // the last retryable error
	for attempt := 0; ; attempt++ {
		err := r.attempt(ctx, attempt, fn)
		if prev != nil && ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
			// The caller's context ended during a retry: what stopped
			// the operation is the transient failure before it.
			return fmt.Errorf("%w (gave up: %v)", prev, ctx.Err())
		}
		if err == nil || !isRetryable(err) || ctx.Err() != nil {
			return err
		}
		prev = err
		if r.policy.Attempts > 0 && attempt+1 >= r.policy.Attempts {
			return err
		}
		wait := r.policy.delay(attempt)
		if r.onRetry != nil {
			r.onRetry(op, attempt+1, wait, err)
		}
		if !backoff.Sleep(ctx, wait) {
			return err
		}
	}
}

func (r *retrier) attempt(ctx context.Context, attempt int, fn func(ctx context.Context, attempt int) error) error {
	if r.policy.AttemptTimeout <= 0 {
		return fn(ctx, attempt)
	}
	actx, cancel := context.WithTimeoutCause(ctx, r.policy.AttemptTimeout, errAttemptTimeout)
	defer cancel()
	err := fn(actx, attempt)
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(actx), errAttemptTimeout) {
		return errors.Join(err, errAttemptTimeout)
	}
	return err
}
