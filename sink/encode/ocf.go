package encode

import (
	"errors"
	"fmt"
	"io"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/avro"
)

// NewOCF prepares the framing of rows of schema as an object container file
// (engine/avro's Container, which documents the layout): the header holds
// the Avro schema of schema.Root, the blocks are compressed with codec and
// end with sync (a random marker when sync is nil).
func NewOCF(schema *engine.Schema, codec avro.Codec, sync []byte) (*avro.Container, error) {
	js, err := avro.Schema(schema.Root)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	o, err := avro.NewContainer(js, codec, sync)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return o, nil
}

// OCFWriter writes rows to w as an object container file, a block whenever
// the pending datums reach the block size. It belongs to one goroutine.
type OCFWriter struct {
	w         io.Writer
	ocf       *avro.Container
	enc       *Avro
	blockSize int
	data, out []byte
	count     int
	header    bool
}

// DefaultBlockSize is the uncompressed size at which an OCFWriter cuts a block.
const DefaultBlockSize = 256 << 10

// NewOCFWriter returns a writer of an OCF with schema and codec to w; the
// header is written with the first block. blockSize <= 0 means
// DefaultBlockSize.
func NewOCFWriter(w io.Writer, schema *engine.Schema, codec avro.Codec, blockSize int) (*OCFWriter, error) {
	o, err := NewOCF(schema, codec, nil)
	if err != nil {
		return nil, err
	}
	enc, _ := NewAvro(schema)
	if blockSize <= 0 {
		blockSize = DefaultBlockSize
	}
	return &OCFWriter{w: w, ocf: o, enc: enc, blockSize: blockSize}, nil
}

// Write encodes row into the current block, writing the block out once it
// reaches the block size. A row that cannot be encoded is not written.
func (w *OCFWriter) Write(row *engine.Row) error {
	var err error
	if w.data, err = w.enc.Append(w.data, row); err != nil {
		return err
	}
	w.count++
	if len(w.data) >= w.blockSize {
		return w.Flush()
	}
	return nil
}

// Flush writes the pending rows as a block (and the header, the first time).
func (w *OCFWriter) Flush() error {
	w.out = w.out[:0]
	if !w.header {
		w.out = w.ocf.AppendHeader(w.out)
		w.header = true
	}
	var err error
	if w.out, err = w.ocf.AppendBlock(w.out, w.count, w.data); err != nil {
		return err
	}
	w.data, w.count = w.data[:0], 0
	if len(w.out) == 0 {
		return nil
	}
	if _, err := w.w.Write(w.out); err != nil {
		return fmt.Errorf("encode: write ocf: %w", err)
	}
	return nil
}

// Close flushes the pending rows; it does not close the underlying writer.
func (w *OCFWriter) Close() error {
	err := w.Flush()
	return errors.Join(err, w.ocf.Close())
}
