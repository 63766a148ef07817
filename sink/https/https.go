package https

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/backoff"
	"github.com/sluicehq/sluice/engine/config"
	"github.com/sluicehq/sluice/sink/encode"
)

// Defaults of Config.
const (
	DefaultMaxBatchRows  = 500
	DefaultMaxBatchBytes = 1 << 20
	DefaultTimeout       = 30 * time.Second
	DefaultConcurrency   = 4
)

// retryPause is the pause between retries of a batch.
var retryPause = backoff.Default

// Config is the `https:` sink of a pipeline.
type Config struct {
	Pos config.Pos
	// URL receives the POSTs.
	URL string `yaml:"url" required:"true"`
	// Format is json (JSON lines, the default) or json_array.
	Format string `yaml:"format"`
	// Gzip compresses request bodies (Content-Encoding: gzip).
	Gzip bool `yaml:"gzip"`
	// Headers are added to every request; ${VAR} is already substituted.
	Headers map[string]string `yaml:"headers"`
	TLS     *TLS              `yaml:"tls"`
	// MaxBatchRows bounds the rows of a request (DefaultMaxBatchRows).
	MaxBatchRows int `yaml:"max_batch_rows"`
	// MaxBatchBytes bounds the uncompressed body of a request (DefaultMaxBatchBytes).
	MaxBatchBytes config.ByteSize `yaml:"max_batch_bytes"`
	// Timeout bounds each request (DefaultTimeout).
	Timeout time.Duration `yaml:"timeout"`
	// MaxRetries bounds the retries of a batch; 0: no bound but max_elapsed and the flush's context.
	MaxRetries int `yaml:"max_retries"`
	// MaxElapsed bounds the time spent on a batch; 0: no bound but the flush's context.
	MaxElapsed time.Duration `yaml:"max_elapsed"`
	// Concurrency is the number of requests in flight for the whole sink (DefaultConcurrency).
	Concurrency int `yaml:"concurrency"`
}

// TLS configures the client's TLS: the `tls:` block every component shares
// (config.TLS), built by its Config.
type TLS = config.TLS

// Validate reports settings that cannot work, at their positions.
func (c *Config) Validate() error {
	var errs config.Errors
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		errs = append(errs, c.Pos.Key("url").Errorf("url must be an http(s) URL, got %q", c.URL))
	}
	switch c.Format {
	case "", "json", "json_array":
	default:
		errs = append(errs, c.Pos.Key("format").Errorf("unknown format %q (expected json or json_array)", c.Format))
	}
	for k, v := range map[string]int{"max_batch_rows": c.MaxBatchRows, "max_batch_bytes": int(c.MaxBatchBytes), "timeout": int(c.Timeout),
		"max_retries": c.MaxRetries, "max_elapsed": int(c.MaxElapsed), "concurrency": c.Concurrency} {
		if v < 0 {
			errs = append(errs, c.Pos.Key(k).Errorf("%s must not be negative", k))
		}
	}
	errs = append(errs, c.TLS.Validate()...)
	if len(errs) > 0 {
		return errs
	}
	return nil
}

func (c *Config) defaults() {
	if c.Format == "" {
		c.Format = "json"
	}
	if c.MaxBatchRows == 0 {
		c.MaxBatchRows = DefaultMaxBatchRows
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
}

// Sink POSTs rows to an HTTPS endpoint.
type Sink struct {
	cfg    Config
	env    engine.SinkEnv
	schema *engine.Schema
	client *http.Client
	sem    chan struct{} // request slots shared by all writers
}

// New builds the HTTPS sink of cfg for rows of schema.
func New(ctx context.Context, cfg Config, schema *engine.Schema, env engine.SinkEnv) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = cfg.Concurrency
	if cfg.TLS != nil {
		tc, err := cfg.TLS.Config()
		if err != nil {
			return nil, fmt.Errorf("https sink: %w", err)
		}
		tr.TLSClientConfig = tc
	}
	return &Sink{cfg: cfg, env: env, schema: schema, client: &http.Client{Transport: tr}, sem: make(chan struct{}, cfg.Concurrency)}, nil
}

// Open implements engine.Sink.
func (s *Sink) Open(ctx context.Context, task engine.TaskID) (engine.Writer, error) {
	enc, err := encode.NewJSON(s.schema)
	if err != nil {
		return nil, fmt.Errorf("https sink: %w", err)
	}
	return &writer{s: s, enc: enc, dead: encode.NewDeadLetters(s.env, task)}, nil
}

// Close releases idle connections.
func (s *Sink) Close(ctx context.Context) error {
	s.client.CloseIdleConnections()
	return nil
}

// batch is rows encoded as JSON, each ending at an offset of ends and
// computed from the input record at the same index of origins.
type batch struct {
	buf     []byte
	ends    []int
	origins []engine.Origin
}

type writer struct {
	s       *Sink
	enc     *encode.JSON
	dead    *encode.DeadLetters
	batches []*batch
	free    []*batch
	body    bytes.Buffer
	gz      *gzip.Writer
	rows    int
}

func (w *writer) Write(row *engine.Row) error {
	var b *batch
	if n := len(w.batches); n > 0 {
		b = w.batches[n-1]
	}
	if b == nil || len(b.ends) >= w.s.cfg.MaxBatchRows || len(b.buf) >= int(w.s.cfg.MaxBatchBytes) {
		if n := len(w.free); n > 0 {
			b, w.free = w.free[n-1], w.free[:n-1]
		} else {
			b = &batch{}
		}
		w.batches = append(w.batches, b)
	}
	var err error
	if b.buf, err = w.enc.Append(b.buf, row); err != nil {
		w.dead.Add(row.Origin, nil, err.Error())
		w.s.env.Stats.Error("encode")
		return nil
	}
	b.ends = append(b.ends, len(b.buf))
	b.origins = append(b.origins, row.Origin)
	w.rows++
	w.s.env.Stats.AddInFlight(1)
	return nil
}

func (w *writer) Flush(ctx context.Context) error {
	for len(w.batches) > 0 {
		b := w.batches[0]
		if err := w.send(ctx, b); err != nil {
			return err
		}
		w.s.env.Stats.AddInFlight(-len(b.ends))
		w.rows -= len(b.ends)
		b.buf, b.ends, b.origins = b.buf[:0], b.ends[:0], b.origins[:0]
		w.free = append(w.free, b)
		w.batches = w.batches[1:]
	}
	if err := w.dead.Flush(ctx); err != nil {
		return fmt.Errorf("https sink: %w", err)
	}
	return nil
}

// rejection is a response that no retry will change.
type rejection struct {
	status int
	body   string
}

// send delivers one batch: acknowledged, or rejected into the dead letters.
func (w *writer) send(ctx context.Context, b *batch) error {
	w.encodeBody(b)
	start := time.Now()
	for attempt := 0; ; attempt++ {
		wait, rej, err := w.post(ctx, b)
		switch {
		case err == nil && rej == nil:
			w.s.env.Stats.Acked(len(b.ends), w.body.Len(), time.Since(start).Seconds())
			return nil
		case rej != nil:
			reason := fmt.Sprintf("https: status %d: %s", rej.status, rej.body)
			prev := 0
			for i, end := range b.ends {
				w.dead.Add(b.origins[i], b.buf[prev:end], reason)
				prev = end
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("https sink: %w", errors.Join(err, ctx.Err()))
		}
		if engine.IsPermanent(err) {
			// Wrong credentials or endpoint: every row would fail the same
			// way, so none is dead-lettered; the runtime retries slowly.
			return fmt.Errorf("https sink: %w", err)
		}
		if w.s.cfg.MaxRetries > 0 && attempt >= w.s.cfg.MaxRetries ||
			w.s.cfg.MaxElapsed > 0 && time.Since(start) >= w.s.cfg.MaxElapsed {
			return fmt.Errorf("https sink: giving up after %d attempts: %w", attempt+1, err)
		}
		if wait == 0 {
			wait = retryPause.Delay(attempt)
		}
		w.s.env.Stats.Retry()
		if !backoff.Sleep(ctx, wait) {
			return fmt.Errorf("https sink: %w", errors.Join(err, ctx.Err()))
		}
	}
}

// encodeBody frames the batch's rows into w.body, compressed when configured.
func (w *writer) encodeBody(b *batch) {
	w.body.Reset()
	var out io.Writer = &w.body
	if w.s.cfg.Gzip {
		if w.gz == nil {
			w.gz = gzip.NewWriter(&w.body)
		} else {
			w.gz.Reset(&w.body)
		}
		out = w.gz
	}
	prev := 0
	if w.s.cfg.Format == "json_array" {
		out.Write([]byte{'['})
	}
	for i, end := range b.ends {
		if i > 0 && w.s.cfg.Format == "json_array" {
			out.Write([]byte{','})
		}
		out.Write(b.buf[prev:end])
		if w.s.cfg.Format != "json_array" {
			out.Write([]byte{'\n'})
		}
		prev = end
	}
	if w.s.cfg.Format == "json_array" {
		out.Write([]byte{']'})
	}
	if w.gz != nil && w.s.cfg.Gzip {
		w.gz.Close()
	}
}

// post makes one request. It returns how long the server asked to wait
// (Retry-After), a rejection for good, or a retryable error.
func (w *writer) post(ctx context.Context, b *batch) (time.Duration, *rejection, error) {
	select {
	case w.s.sem <- struct{}{}:
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	}
	defer func() { <-w.s.sem }()
	rctx, cancel := context.WithTimeout(ctx, w.s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, w.s.cfg.URL, bytes.NewReader(w.body.Bytes()))
	if err != nil {
		return 0, &rejection{body: "invalid request to " + redactURL(w.s.cfg.URL)}, nil
	}
	if w.s.cfg.Format == "json_array" {
		req.Header.Set("Content-Type", "application/json")
	} else {
		req.Header.Set("Content-Type", "application/x-ndjson")
	}
	if w.s.cfg.Gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	for k, v := range w.s.cfg.Headers {
		req.Header.Set(k, v)
	}
	resp, err := w.s.client.Do(req)
	if err != nil {
		// The URL's userinfo and query string may hold secrets: the error
		// names the URL without them.
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL = redactURL(ue.URL)
		}
		if rctx.Err() != nil && ctx.Err() == nil {
			w.s.env.Stats.Error("timeout")
		} else {
			w.s.env.Stats.Error("network")
		}
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // reuse the connection
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return 0, nil, nil
	}
	w.s.env.Stats.Error("http_" + strconv.Itoa(resp.StatusCode))
	if isPermanent(resp.StatusCode) {
		return 0, nil, engine.Permanent(fmt.Errorf("status %d: %s", resp.StatusCode, body))
	}
	if !isRetryable(resp.StatusCode) {
		return 0, &rejection{status: resp.StatusCode, body: string(body)}, nil
	}
	var wait time.Duration
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		wait = retryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return wait, nil, fmt.Errorf("status %d: %s", resp.StatusCode, body)
}

// isPermanent reports whether a response status says the request can never
// succeed whatever its rows: the credentials or the endpoint are wrong (401,
// 403, 404, 405, 407, 410). Such a batch is not dead-lettered; the flush
// fails with a permanent error until someone fixes the job or the receiver.
// A status about the payload (400, 413, 422, ...) rejects the batch's rows
// into the dead-letter destination instead.
func isPermanent(status int) bool {
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound,
		http.StatusMethodNotAllowed, http.StatusProxyAuthRequired, http.StatusGone:
		return true
	}
	return false
}

// isRetryable reports whether a response status may succeed when retried.
func isRetryable(status int) bool {
	return status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500 || status < 400
}

// retryAfter parses a Retry-After header: seconds or an HTTP date; 0 when absent or invalid.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func (w *writer) Close(ctx context.Context) error {
	w.s.env.Stats.AddInFlight(-w.rows)
	w.batches, w.rows = nil, 0
	w.dead.Discard()
	return w.dead.Close(ctx)
}
