package object

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/avro"
	"github.com/sluicehq/sluice/engine/backoff"
	"github.com/sluicehq/sluice/sink/encode"
)

// segment is rows written since the last Flush that go to one object: the
// first segment to the open object, each later one to a further object (a
// segment is cut when its object reached max_object_bytes).
type segment struct {
	buf    []byte // encoded rows, without the format's framing
	rows   int
	cut    bool // the object is full after this segment
	opened time.Time
}

// writer is one task's writer. Write, Flush, State and Close come from the
// task's goroutine; the age timer finalizes a quiet object from its own.
type writer struct {
	s     *Sink
	task  engine.TaskID
	log   *slog.Logger
	enc   encode.Encoder
	json  *encode.JSON
	csv   *encode.CSV
	dead  *encode.DeadLetters
	nonce string // this writer instance's part names; see partID

	mu   sync.Mutex // guards the fields below, against the age timer
	st   state
	skip int64 // replayed rows to drop: they are in finalized objects already
	segs []segment
	rows int // rows in segs

	ocf     *avro.Container // framing of the open object (its sync marker)
	ocfName string
	out     []byte

	timer    *time.Timer
	timerWG  sync.WaitGroup
	attempts int // failed finalizations by the timer in a row
	closed   bool
}

func (w *writer) name() string { return w.s.Name(w.task, w.st.Series, w.st.Seq) }

// Write implements engine.Writer.
func (w *writer) Write(row *engine.Row) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.segs) == 0 {
		w.segs = append(w.segs, segment{})
	}
	seg := &w.segs[len(w.segs)-1]
	mark := len(seg.buf)
	var err error
	if seg.buf, err = w.enc.Append(seg.buf, row); err != nil {
		v, _ := w.json.Append(nil, row)
		w.dead.Add(row.Origin, v, err.Error())
		w.s.env.Stats.Error("encode")
		return nil
	}
	if w.s.opts.Format == encode.FormatJSON {
		seg.buf = append(seg.buf, '\n')
	}
	if w.skip > 0 {
		// The row is in an object a run before a crash finalized. It is
		// encoded first so that rows the encoder rejects are skipped as that
		// run skipped them.
		seg.buf = seg.buf[:mark]
		w.skip--
		return nil
	}
	i := len(w.segs) - 1
	if seg.rows > 0 || (i == 0 && w.st.Rows > 0) {
		if w.estimate(i) > w.s.opts.MaxObjectBytes {
			next := segment{buf: append([]byte(nil), seg.buf[mark:]...)}
			seg.buf = seg.buf[:mark]
			seg.cut = true
			w.segs = append(w.segs, next)
			seg = &w.segs[len(w.segs)-1]
		}
	}
	if seg.rows == 0 {
		seg.opened = time.Now()
	}
	seg.rows++
	w.rows++
	w.s.env.Stats.AddInFlight(1)
	return nil
}

// estimate is the size the object of segment i will have with the segment's
// rows: the rows encoded, the format's header and block framing, and for the
// open object what its parts hold already. Compression only makes it smaller.
func (w *writer) estimate(i int) int64 {
	seg := &w.segs[i]
	var n int64
	if i == 0 {
		n = w.st.Bytes
	}
	if n == 0 {
		n += int64(w.s.headerLen)
	}
	return n + int64(len(seg.buf)+w.s.blockOverhead)
}

// Flush implements engine.Writer: each segment becomes a part of its object,
// and an object that is full or older than max_object_age is finalized.
func (w *writer) Flush(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.segs) > 0 {
		seg := &w.segs[0]
		if seg.rows > 0 {
			if err := w.stage(ctx, seg); err != nil {
				w.s.env.Stats.Error("upload")
				return err
			}
		}
		switch {
		case seg.cut:
			if err := w.finalize(ctx, "size"); err != nil {
				return err
			}
		case len(w.segs) == 1 && w.aged(time.Now()):
			if err := w.finalize(ctx, "age"); err != nil {
				return err
			}
		}
		w.segs = w.segs[1:]
	}
	w.segs = nil
	if err := w.dead.Flush(ctx); err != nil {
		return fmt.Errorf("%s sink: %w", w.s.opts.Kind, err)
	}
	w.schedule()
	return nil
}

// stage uploads seg as the next part of the open object.
func (w *writer) stage(ctx context.Context, seg *segment) error {
	start := time.Now()
	name := w.name()
	w.out = w.out[:0]
	first := w.st.Bytes == 0
	switch w.s.opts.Format {
	case encode.FormatCSV:
		if first {
			w.out = w.csv.Header(w.out)
		}
		w.out = append(w.out, seg.buf...)
	case encode.FormatAvro:
		if err := w.openOCF(name); err != nil {
			return err
		}
		if first {
			w.out = w.ocf.AppendHeader(w.out)
		}
		var err error
		if w.out, err = w.ocf.AppendBlock(w.out, seg.rows, seg.buf); err != nil {
			return err
		}
	default:
		w.out = append(w.out, seg.buf...)
	}
	idx := w.st.next()
	if err := w.s.store.Stage(ctx, name, partID(w.nonce, idx), w.out); err != nil {
		return fmt.Errorf("%s sink: stage part %d of %s: %w", w.s.opts.Kind, idx, name, err)
	}
	w.st.addPart(w.nonce, idx)
	w.st.Rows += int64(seg.rows)
	w.st.Bytes += int64(len(w.out))
	if w.st.Opened == 0 {
		w.st.Opened = seg.opened.UnixMicro()
	}
	w.s.env.Stats.Acked(seg.rows, len(w.out), time.Since(start).Seconds())
	w.s.env.Stats.AddInFlight(-seg.rows)
	w.rows -= seg.rows
	seg.rows, seg.buf = 0, nil
	return nil
}

// openOCF prepares the framing of object name. Its sync marker is derived
// from the name, so that every writer instance adding blocks to the object
// uses the one its header holds.
func (w *writer) openOCF(name string) error {
	if w.ocf != nil && w.ocfName == name {
		return nil
	}
	if w.ocf != nil {
		w.ocf.Close()
	}
	sum := sha256.Sum256([]byte(name))
	o, err := encode.NewOCF(w.s.schema, w.s.opts.Codec, sum[:avro.SyncSize])
	if err != nil {
		return err
	}
	w.ocf, w.ocfName = o, name
	return nil
}

func (w *writer) aged(now time.Time) bool {
	return w.st.Rows > 0 && now.Sub(time.UnixMicro(w.st.Opened)) >= w.s.opts.MaxObjectAge
}

// finalize makes the open object visible and opens the series' next one.
func (w *writer) finalize(ctx context.Context, reason string) error {
	if w.st.Rows == 0 {
		return nil
	}
	name := w.name()
	err := w.s.store.Commit(ctx, name, w.st.partIDs(), Meta{Rows: w.st.Rows, Close: reason, ContentType: w.s.ctype})
	if errors.Is(err, ErrExists) {
		// Another writer of this series (a pod that has not yet learnt it
		// lost the task) finalized the object first; what it holds beyond
		// our rows is replayed to us next, and skipped.
		rows, ok, cerr := w.s.store.Committed(ctx, name)
		if cerr != nil || !ok {
			return fmt.Errorf("%s sink: finalize %s: %w", w.s.opts.Kind, name, errors.Join(err, cerr))
		}
		if rows >= w.st.Rows {
			w.skip += rows - w.st.Rows
		} else {
			w.log.Error("object finalized by another writer holds fewer rows than this one staged; the rest are lost from it",
				"object", name, "rows", rows, "staged", w.st.Rows)
		}
	} else if err != nil {
		return fmt.Errorf("%s sink: finalize %s: %w", w.s.opts.Kind, name, err)
	}
	w.log.Debug("object finalized", "object", name, "rows", w.st.Rows, "bytes", w.st.Bytes, "close", reason)
	w.st.advance()
	return nil
}

// schedule arms the age timer for an open object with no unflushed rows, so
// that max_object_age closes it even when no row comes. Called with mu held.
func (w *writer) schedule() {
	if w.closed || w.st.Rows == 0 || len(w.segs) > 0 || w.timer != nil {
		return
	}
	d := time.Until(time.UnixMicro(w.st.Opened).Add(w.s.opts.MaxObjectAge))
	if w.attempts > 0 {
		d = max(d, backoff.Default.Delay(w.attempts-1))
	}
	w.timerWG.Add(1)
	w.timer = time.AfterFunc(max(d, 0), w.onAge)
}

func (w *writer) onAge() {
	defer w.timerWG.Done()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer = nil
	if w.closed || len(w.segs) > 0 {
		return // the next Flush or Close sees the age
	}
	if !w.aged(time.Now()) {
		w.schedule()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), finalizeTimeout)
	defer cancel()
	if err := w.finalize(ctx, "age"); err != nil {
		w.attempts++
		w.s.env.Stats.Error("finalize")
		w.log.Warn("object past max_object_age not finalized; retrying", "task", w.task.String(), "attempt", w.attempts, "error", err)
	} else {
		w.attempts = 0
	}
	w.schedule()
}

// State implements engine.StatefulWriter.
func (w *writer) State() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.st.encode()
}

// Close implements engine.Writer. After a final Flush it finalizes the open
// object, so that a drained or released task leaves nothing invisible; rows
// not flushed are abandoned (they are replayed).
func (w *writer) Close(ctx context.Context) error {
	w.mu.Lock()
	w.closed = true
	if w.timer != nil && w.timer.Stop() {
		w.timerWG.Done()
	}
	w.timer = nil
	var err error
	if w.rows == 0 && w.st.Rows > 0 {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalizeTimeout)
		err = w.finalize(fctx, "close")
		cancel()
	}
	w.s.env.Stats.AddInFlight(-w.rows)
	w.segs, w.rows = nil, 0
	if w.ocf != nil {
		err = errors.Join(err, w.ocf.Close())
		w.ocf = nil
	}
	w.mu.Unlock()
	w.timerWG.Wait()
	w.dead.Discard()
	return errors.Join(err, w.dead.Close(ctx))
}
