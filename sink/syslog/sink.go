package syslog

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/backoff"
	"github.com/sluicehq/sluice/sink/encode"
)

// Sink sends rows as syslog messages to one receiver.
type Sink struct {
	cfg     Config
	env     engine.SinkEnv
	log     *slog.Logger
	network string // udp, tcp, tcp+tls
	addr    string
	tls     *tls.Config
	pri     int
	procID  string
	msg     template
	json    *encode.JSON // when msg is nil: the row as JSON
	sd      template
	ts      *engine.Column
	backoff backoff.Policy // pause between reconnections
	now     func() time.Time
}

var _ engine.Sink = (*Sink)(nil)

// New validates cfg and compiles its templates against schema. It does not
// connect: each writer connects on its first Flush.
func New(ctx context.Context, cfg Config, schema *engine.Schema, env engine.SinkEnv, opts ...Option) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := options{backoff: backoff.Default, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	s := &Sink{cfg: cfg, env: env, backoff: o.backoff, now: o.now,
		procID: strconv.Itoa(os.Getpid())}
	s.log = env.Log().With("sink", env.Name, "address", cfg.Address)
	s.network, s.addr, _ = cfg.network()
	fac, _ := code(cfg.Facility, facilities, "facility")
	sev, _ := code(cfg.Severity, severities, "severity")
	s.pri = fac*8 + sev
	var err error
	if s.network == "tcp+tls" {
		if s.tls, err = cfg.TLS.Config(); err != nil {
			return nil, fmt.Errorf("syslog: %w", err)
		}
	}
	if cfg.Message != "" {
		if s.msg, err = compileTemplate(cfg.Message, schema); err != nil {
			return nil, fmt.Errorf("syslog: message: %w", err)
		}
	} else if s.json, err = encode.NewJSON(schema); err != nil {
		return nil, fmt.Errorf("syslog: %w", err)
	}
	if cfg.StructuredData != "" {
		if s.sd, err = compileTemplate(cfg.StructuredData, schema); err != nil {
			return nil, fmt.Errorf("syslog: structured_data: %w", err)
		}
	}
	if cfg.Timestamp != "" {
		c, ok := schema.Lookup(cfg.Timestamp)
		t := c.Type
		if ok {
			if inner, isNull := t.Nullable(); isNull {
				t = inner
			}
		}
		if !ok || !t.Logical.IsTimestamp() {
			return nil, fmt.Errorf("syslog: timestamp %q: not a timestamp column", cfg.Timestamp)
		}
		s.ts = &c
	}
	return s, nil
}

// Open returns a writer with its own connection for task.
func (s *Sink) Open(ctx context.Context, task engine.TaskID) (engine.Writer, error) {
	return &Writer{s: s, log: s.log.With("task", task.String())}, nil
}

// Close does nothing: writers own the connections.
func (s *Sink) Close(ctx context.Context) error { return nil }

// Writer formats one task's rows and sends them on its own connection.
type Writer struct {
	s    *Sink
	log  *slog.Logger
	conn net.Conn
	buf  []byte // framed messages since the last Flush
	ends []int  // UDP: end of each datagram in buf
	tmp  []byte
}

// Write formats row as one framed message.
func (w *Writer) Write(row *engine.Row) error {
	s := w.s
	now := s.now()
	if s.ts != nil {
		if t, ok := timestampOf(s.ts, row); ok {
			now = t
		}
	}
	m := w.tmp[:0]
	m = append(m, '<')
	m = strconv.AppendInt(m, int64(s.pri), 10)
	m = append(m, '>')
	if s.cfg.Format == RFC5424 {
		m = append(m, "1 "...)
		m = now.UTC().AppendFormat(m, "2006-01-02T15:04:05.000000Z07:00")
		m = append(m, ' ')
		m = appendField(m, s.cfg.Hostname)
		m = appendField(m, s.cfg.AppName)
		m = appendField(m, s.procID)
		m = appendField(m, s.cfg.MsgID)
		if s.sd != nil {
			m = s.sd.appendTo(m, row)
		} else {
			m = append(m, '-')
		}
		m = append(m, ' ')
	} else {
		m = now.Local().AppendFormat(m, time.Stamp)
		m = append(m, ' ')
		m = append(m, s.cfg.Hostname...)
		m = append(m, ' ')
		m = append(m, s.cfg.AppName...)
		m = append(m, '[')
		m = append(m, s.procID...)
		m = append(m, "]: "...)
	}
	if s.msg != nil {
		m = s.msg.appendTo(m, row)
	} else {
		var err error
		if m, err = s.json.Append(m, row); err != nil {
			w.tmp = m
			return fmt.Errorf("syslog: %w", err)
		}
	}
	w.tmp = m
	if s.network != "udp" {
		// RFC 6587 octet counting: MSG-LEN SP SYSLOG-MSG.
		w.buf = strconv.AppendInt(w.buf, int64(len(m)), 10)
		w.buf = append(w.buf, ' ')
	}
	w.buf = append(w.buf, m...)
	w.ends = append(w.ends, len(w.buf))
	return nil
}

func appendField(b []byte, v string) []byte {
	if v == "" {
		v = "-"
	}
	b = append(b, v...)
	return append(b, ' ')
}

// Flush sends every message written since the last Flush. It returns once the
// operating system accepted all of them on a connection that was open when
// they were written: syslog over TCP and TLS has no acknowledgement (see
// doc.go). On a write error it reconnects with backoff and sends the whole
// batch again.
func (w *Writer) Flush(ctx context.Context) error {
	if len(w.ends) == 0 {
		return nil
	}
	start := time.Now()
	n := len(w.ends)
	w.s.env.Stats.AddInFlight(n)
	defer w.s.env.Stats.AddInFlight(-n)
	for attempt := 0; ; attempt++ {
		err := w.send(ctx)
		if err == nil {
			break
		}
		w.closeConn()
		if !isRetryable(err) || ctx.Err() != nil {
			w.s.env.Stats.Error("send")
			return fmt.Errorf("syslog: send to %s: %w", w.s.cfg.Address, err)
		}
		w.s.env.Stats.Error("connection")
		w.s.env.Stats.Retry()
		w.log.Warn("send failed, reconnecting", "error", err, "attempt", attempt+1)
		if !backoff.Sleep(ctx, w.s.backoff.Delay(attempt)) {
			return fmt.Errorf("syslog: send to %s: %w", w.s.cfg.Address, ctx.Err())
		}
	}
	w.s.env.Stats.Acked(n, len(w.buf), time.Since(start).Seconds())
	w.buf, w.ends = w.buf[:0], w.ends[:0]
	return nil
}

func (w *Writer) send(ctx context.Context) error {
	if w.conn != nil && w.s.network != "udp" && peerClosed(w.conn) {
		w.closeConn()
	}
	if w.conn == nil {
		if err := w.connect(ctx); err != nil {
			return err
		}
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = w.conn.SetWriteDeadline(dl)
	} else {
		_ = w.conn.SetWriteDeadline(time.Time{})
	}
	if w.s.network == "udp" {
		prev := 0
		for _, e := range w.ends {
			if _, err := w.conn.Write(w.buf[prev:e]); err != nil {
				return err
			}
			prev = e
		}
		return nil
	}
	_, err := w.conn.Write(w.buf)
	return err
}

func (w *Writer) connect(ctx context.Context) error {
	d := net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	var conn net.Conn
	var err error
	switch w.s.network {
	case "udp":
		conn, err = d.DialContext(ctx, "udp", w.s.addr)
	case "tcp":
		conn, err = d.DialContext(ctx, "tcp", w.s.addr)
	default:
		td := tls.Dialer{NetDialer: &d, Config: w.s.tls}
		conn, err = td.DialContext(ctx, "tcp", w.s.addr)
	}
	if err != nil {
		return err
	}
	w.conn = conn
	w.log.Debug("connected")
	return nil
}

// peerClosed reports whether the receiver closed the connection (or reset
// it): a receiver never sends anything, so a read that does not time out at
// once means the end. Checking before a send avoids writing a batch into a
// connection the kernel would only report as broken on the next write.
func peerClosed(c net.Conn) bool {
	var one [1]byte
	_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
	_, err := c.Read(one[:])
	_ = c.SetReadDeadline(time.Time{})
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return true
}

func (w *Writer) closeConn() {
	if w.conn != nil {
		_ = w.conn.Close()
		w.conn = nil
	}
}

// Close closes the connection; unflushed messages are dropped.
func (w *Writer) Close(ctx context.Context) error {
	w.closeConn()
	w.buf, w.ends = w.buf[:0], w.ends[:0]
	return nil
}

// isRetryable reports whether a send may succeed on a new connection: every
// network error is, a bad TLS configuration or certificate is not.
func isRetryable(err error) bool {
	var certErr *tls.CertificateVerificationError
	var recErr tls.RecordHeaderError
	if errors.As(err, &certErr) || errors.As(err, &recErr) {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)
}
