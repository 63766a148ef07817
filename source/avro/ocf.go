package avro

import (
	"fmt"
	"io"

	"github.com/sluicehq/sluice/engine"
	wire "github.com/sluicehq/sluice/engine/avro"
)

// ErrCorruptOCF marks an object container file that cannot be read: a bad
// magic, header, sync marker, block or checksum (the format's error, from
// engine/avro).
var ErrCorruptOCF = wire.ErrCorruptOCF

// DefaultMaxBlockBytes bounds a block of an object container file, compressed
// and decompressed, unless WithOCFMaxBlockBytes says otherwise.
const DefaultMaxBlockBytes = wire.DefaultMaxBlockBytes

// OCFReader reads an Avro object container file block by block (through
// engine/avro's BlockReader, which documents the layout) and splits blocks
// into the binary encodings of single records with the file's schema. It is
// used by one goroutine.
type OCFReader struct {
	br     *wire.BlockReader
	schema *engine.Type

	block []byte // the current block's decompressed data
	left  int64  // records left in it
	pos   int
	err   error
}

// OCFOption configures NewOCFReader.
type OCFOption func(*ocfOptions)

type ocfOptions struct {
	maxBlock int
}

// WithOCFMaxBlockBytes bounds a block, compressed and decompressed (default
// DefaultMaxBlockBytes).
func WithOCFMaxBlockBytes(n int) OCFOption { return func(o *ocfOptions) { o.maxBlock = n } }

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorruptOCF, fmt.Sprintf(format, args...))
}

// NewOCFReader reads the header of an object container file and parses its
// writer schema.
func NewOCFReader(r io.Reader, opts ...OCFOption) (*OCFReader, error) {
	oo := ocfOptions{maxBlock: DefaultMaxBlockBytes}
	for _, opt := range opts {
		opt(&oo)
	}
	br, err := wire.NewBlockReader(r, wire.WithMaxBlockBytes(oo.maxBlock))
	if err != nil {
		return nil, err
	}
	o := &OCFReader{br: br}
	if o.schema, err = ParseSchema(br.Header().Schema); err != nil {
		br.Close()
		return nil, fmt.Errorf("avro ocf: writer schema: %w", err)
	}
	return o, nil
}

// Schema is the writer schema the file holds.
func (o *OCFReader) Schema() *engine.Type { return o.schema }

// SchemaText is the writer schema's JSON as the file holds it.
func (o *OCFReader) SchemaText() []byte { return o.br.Header().Schema }

// Codec names the file's codec.
func (o *OCFReader) Codec() wire.Codec { return o.br.Header().Codec }

// Meta returns a metadata value of the header, nil when absent.
func (o *OCFReader) Meta(key string) []byte { return o.br.Header().Meta[key] }

// Close releases the decompressor. It does not close the underlying reader.
func (o *OCFReader) Close() error { return o.br.Close() }

// Next returns the binary encoding of the next record, io.EOF after the last.
// The slice stays valid (and is never overwritten) after later calls: each
// block is decompressed into a buffer of its own, so a caller may keep the
// records of past blocks.
func (o *OCFReader) Next() ([]byte, error) {
	for o.left == 0 {
		if o.err != nil {
			return nil, o.err
		}
		if o.pos != len(o.block) {
			o.err = corrupt("%d bytes left over after the block's records", len(o.block)-o.pos)
			return nil, o.err
		}
		if err := o.nextBlock(); err != nil {
			o.err = err
			return nil, err
		}
	}
	n, err := Skip(o.schema, o.block[o.pos:])
	if err != nil {
		o.err = corrupt("record: %v", err)
		return nil, o.err
	}
	rec := o.block[o.pos : o.pos+n : o.pos+n]
	o.pos += n
	o.left--
	return rec, nil
}

func (o *OCFReader) nextBlock() error {
	count, data, err := o.br.Next()
	if err != nil {
		return err
	}
	if m := minSize(o.schema); m > 0 && count > int64(len(data)/m) {
		return corrupt("block claims %d records in %d bytes", count, len(data))
	}
	o.block, o.pos, o.left = data, 0, count
	return nil
}
