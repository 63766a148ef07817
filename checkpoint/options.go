package checkpoint

import (
	"log/slog"
	"time"

	"cloud.google.com/go/storage"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/engine"
)

// Option configures Open, New and NewGCS. An option that does not concern
// the constructor it is passed to is ignored.
type Option func(*config)

type config struct {
	client  *storage.Client
	reg     prometheus.Registerer
	log     *slog.Logger
	retain  int
	backoff Backoff
	// stateThreshold is the size from which a state file is shared.
	stateThreshold int64
	// stateGrace is how long an unreferenced state object is left alone.
	stateGrace time.Duration
	// now is the clock of the state collector and of State's memory of
	// uploads; tests replace it.
	now func() time.Time
	// onRetry is set by New for the stores it builds, so that their
	// retries count in the Checkpointer's metrics.
	onRetry func(op string)
}

func newConfig(opts []Option) *config {
	cfg := &config{log: slog.Default(), retain: engine.DefaultRetain, backoff: defaultBackoff(), stateThreshold: 1 << 20, stateGrace: DefaultStateGrace, now: time.Now}
	for _, o := range opts {
		o(cfg)
	}
	return cfg
}

// WithStorageClient makes Open use client for gs:// URLs instead of building
// one with storage.NewClient (which honours STORAGE_EMULATOR_HOST and the
// application default credentials). The caller keeps and closes client.
func WithStorageClient(client *storage.Client) Option {
	return func(c *config) { c.client = client }
}

// WithRegisterer registers the sluice_checkpoint_* metrics with reg (default:
// no metrics are registered). Pass it to Open or New, once per registry.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(c *config) { c.reg = reg }
}

// WithLogger sets the logger for retries and skipped corrupt checkpoints
// (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.log = l }
}

// WithRetain sets how many of a pod's newest checkpoints Collect always
// keeps, whether or not a committed offset references them (default
// engine.DefaultRetain, 3; at least 1). They are what LoadLatest falls back on after a corrupt object.
func WithRetain(n int) Option {
	return func(c *config) { c.retain = max(n, 1) }
}

// WithBackoff sets the retry policy of remote stores (default: 6 attempts,
// waits from 100ms doubling up to 5s with jitter, 30s per attempt). Zero
// fields keep their defaults, except Attempts, where 0 means until the
// context is done.
func WithBackoff(b Backoff) Option {
	return func(c *config) {
		d := defaultBackoff()
		if b.Initial <= 0 {
			b.Initial = d.Initial
		}
		if b.Max <= 0 {
			b.Max = d.Max
		}
		if b.AttemptTimeout <= 0 {
			b.AttemptTimeout = d.AttemptTimeout
		}
		c.backoff = b
	}
}

func (c *config) retrier() *retrier {
	log, onRetry := c.log, c.onRetry
	return &retrier{
		policy: c.backoff,
		onRetry: func(op string, attempt int, wait time.Duration, err error) {
			log.Info("retrying checkpoint store request", "op", op, "attempt", attempt, "wait", wait, "err", err)
			if onRetry != nil {
				onRetry(op)
			}
		},
	}
}
