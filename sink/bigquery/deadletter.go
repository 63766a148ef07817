package bigquery

import (
	"context"
	"fmt"
	"slices"
	"time"
	"unsafe"

	"github.com/sluicehq/sluice/engine"
)

// deadLetter sends the rows BigQuery rejected in re to the dead-letter
// destination and returns the others, to be appended again at the same
// offset. Without a dead-letter destination it returns re.
func (w *Writer) deadLetter(ctx context.Context, rows [][]byte, re *rowsError) ([][]byte, error) {
	if w.s.env.DeadLetter == nil {
		return nil, re
	}
	if w.dl == nil {
		dl, err := w.s.env.DeadLetter.Open(ctx, w.task)
		if err != nil {
			return nil, fmt.Errorf("open dead letters: %w", err)
		}
		w.dl = dl
	}
	bad := make([]bool, len(rows))
	for _, e := range re.rows {
		i := int(e.GetIndex())
		if i < 0 || i >= len(rows) || bad[i] {
			continue
		}
		bad[i] = true
		r := &w.dlRow
		r.Reset(engine.DeadLetterSchema.Width())
		r.SetStr(engine.DLPipeline, w.s.env.Pipeline)
		r.SetStr(engine.DLStage, "sink")
		r.SetStr(engine.DLError, w.s.env.Redact.Redact(fmt.Sprintf("bigquery: row rejected: %s: %s", e.GetCode(), e.GetMessage())))
		r.SetStr(engine.DLTopic, w.task.Topic)
		r.SetInt(engine.DLPartition, int64(w.task.Partition))
		r.SetInt(engine.DLOffset, w.origin(rows[i]))
		r.SetInt(engine.DLTimestamp, time.Now().UnixMicro())
		r.SetNull(engine.DLKey)
		r.SetStr(engine.DLValue, engine.UnsafeString(rows[i])) // the row as proto wire bytes
		if err := w.dl.Write(r); err != nil {
			return nil, fmt.Errorf("write dead letter: %w", err)
		}
	}
	kept := slices.Clone(rows)
	n := 0
	for i, r := range rows {
		if !bad[i] {
			kept[n] = r
			n++
		}
	}
	w.log.Warn("rows sent to the dead-letter destination", "rows", len(rows)-n, "error", re.err)
	return kept[:n:n], nil
}

// origin returns the input offset of an encoded row of this flush: rows are
// slices of w.buf (a retry keeps the slices but not their positions in the
// flush), so the row's end in w.buf finds its index among w.ends. -1 when
// the row is not in w.buf.
func (w *Writer) origin(row []byte) int64 {
	if len(w.buf) == 0 {
		return -1
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(w.buf)))
	at := uintptr(unsafe.Pointer(unsafe.SliceData(row)))
	if at < base || at > base+uintptr(len(w.buf)) {
		return -1
	}
	end := int(at-base) + len(row)
	i, ok := slices.BinarySearch(w.ends, end)
	if !ok || i >= len(w.offsets) {
		return -1
	}
	return w.offsets[i]
}

func (w *Writer) flushDeadLetters(ctx context.Context) error {
	if w.dl == nil {
		return nil
	}
	if err := w.dl.Flush(ctx); err != nil {
		return fmt.Errorf("bigquery: flush dead letters: %w", err)
	}
	return nil
}

// discardDeadLetters forgets dead letters of a failed flush: the bundle is
// replayed and they will be written again.
func (w *Writer) discardDeadLetters() {
	if w.dl != nil {
		_ = w.dl.Close(context.Background())
		w.dl = nil
	}
}
