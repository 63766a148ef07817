package encode

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/golang/snappy"
	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/zstd"

	"github.com/sluicehq/sluice/engine"
)

// Codec is an OCF block compression codec, named as in avro.codec.
type Codec string

// Codecs of the Avro specification that OCF supports.
const (
	CodecNull    Codec = "null"
	CodecDeflate Codec = "deflate"
	CodecSnappy  Codec = "snappy"
	CodecZstd    Codec = "zstandard"
)

// ParseCodec accepts the codec names of the job file: null (or empty),
// deflate, snappy, zstd (or zstandard).
func ParseCodec(s string) (Codec, error) {
	switch s {
	case "", "null":
		return CodecNull, nil
	case "deflate":
		return CodecDeflate, nil
	case "snappy":
		return CodecSnappy, nil
	case "zstd", "zstandard":
		return CodecZstd, nil
	}
	return "", fmt.Errorf("encode: unknown avro codec %q (expected null, deflate, snappy or zstd)", s)
}

// ocfMagic starts every object container file. Part of the format.
var ocfMagic = []byte{'O', 'b', 'j', 1}

// SyncSize is the size of an OCF sync marker.
const SyncSize = 16

// OCF frames Avro datums as an object container file: AppendHeader once at
// the start of a file, then AppendBlock for each block of datums. It keeps the
// compressor of its codec, so it belongs to one goroutine at a time; blocks
// made by several OCFs with the same schema, codec and sync marker may be
// appended to one file.
type OCF struct {
	schema []byte
	codec  Codec
	sync   [SyncSize]byte

	flate *flate.Writer
	zstd  *zstd.Encoder
	cbuf  bytes.Buffer
	sbuf  []byte
}

// NewOCF prepares the framing of schema's rows with codec and sync marker
// (a random one when sync is nil).
func NewOCF(schema *engine.Schema, codec Codec, sync []byte) (*OCF, error) {
	js, err := AvroSchema(schema.Root)
	if err != nil {
		return nil, err
	}
	o := &OCF{schema: js, codec: codec}
	if sync == nil {
		_, _ = rand.Read(o.sync[:])
	} else if len(sync) != SyncSize {
		return nil, fmt.Errorf("encode: sync marker of %d bytes, want %d", len(sync), SyncSize)
	} else {
		copy(o.sync[:], sync)
	}
	switch codec {
	case CodecNull, CodecSnappy:
	case CodecDeflate:
		o.flate, _ = flate.NewWriter(nil, flate.DefaultCompression)
	case CodecZstd:
		o.zstd, err = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("encode: zstd: %w", err)
		}
	default:
		return nil, fmt.Errorf("encode: unknown avro codec %q", codec)
	}
	return o, nil
}

// Sync returns the file's sync marker.
func (o *OCF) Sync() []byte { return o.sync[:] }

// Schema returns the Avro schema JSON written in the header.
func (o *OCF) Schema() []byte { return o.schema }

// AppendHeader appends the file header.
func (o *OCF) AppendHeader(dst []byte) []byte {
	dst = append(dst, ocfMagic...)
	dst = AppendLong(dst, 2)
	dst = appendAvroString(dst, "avro.schema")
	dst = AppendLong(dst, int64(len(o.schema)))
	dst = append(dst, o.schema...)
	dst = appendAvroString(dst, "avro.codec")
	dst = appendAvroString(dst, string(o.codec))
	dst = append(dst, 0)
	return append(dst, o.sync[:]...)
}

func appendAvroString(dst []byte, s string) []byte {
	return append(AppendLong(dst, int64(len(s))), s...)
}

// AppendBlock appends a block of count datums, whose concatenated encodings
// are data, compressed with the codec. An empty block (count 0) appends nothing.
func (o *OCF) AppendBlock(dst []byte, count int, data []byte) ([]byte, error) {
	if count == 0 {
		return dst, nil
	}
	dst = AppendLong(dst, int64(count))
	switch o.codec {
	case CodecNull:
		dst = AppendLong(dst, int64(len(data)))
		dst = append(dst, data...)
	case CodecDeflate:
		o.cbuf.Reset()
		o.flate.Reset(&o.cbuf)
		if _, err := o.flate.Write(data); err != nil {
			return dst, fmt.Errorf("encode: deflate: %w", err)
		}
		if err := o.flate.Close(); err != nil {
			return dst, fmt.Errorf("encode: deflate: %w", err)
		}
		dst = AppendLong(dst, int64(o.cbuf.Len()))
		dst = append(dst, o.cbuf.Bytes()...)
	case CodecSnappy:
		o.sbuf = snappy.Encode(o.sbuf[:cap(o.sbuf)], data)
		dst = AppendLong(dst, int64(len(o.sbuf)+4))
		dst = append(dst, o.sbuf...)
		dst = binary.BigEndian.AppendUint32(dst, crc32.ChecksumIEEE(data))
	case CodecZstd:
		o.sbuf = o.zstd.EncodeAll(data, o.sbuf[:0])
		dst = AppendLong(dst, int64(len(o.sbuf)))
		dst = append(dst, o.sbuf...)
	}
	return append(dst, o.sync[:]...), nil
}

// Close releases the compressor.
func (o *OCF) Close() error {
	if o.zstd != nil {
		return o.zstd.Close()
	}
	return nil
}

// ReadOCFHeader reads the header of an existing object container file and
// returns its schema JSON, codec and sync marker, so that a writer can append
// blocks to it.
func ReadOCFHeader(r io.Reader) (schema []byte, codec Codec, sync []byte, err error) {
	br := &byteReader{r: r}
	magic := make([]byte, 4)
	if _, err := io.ReadFull(br, magic); err != nil {
		return nil, "", nil, fmt.Errorf("encode: ocf header: %w", err)
	}
	if !bytes.Equal(magic, ocfMagic) {
		return nil, "", nil, errors.New("encode: ocf header: not an Avro object container file")
	}
	codec = CodecNull
	for {
		n, err := readLong(br)
		if err != nil {
			return nil, "", nil, fmt.Errorf("encode: ocf header: %w", err)
		}
		if n == 0 {
			break
		}
		if n < 0 {
			n = -n
			if _, err := readLong(br); err != nil {
				return nil, "", nil, fmt.Errorf("encode: ocf header: %w", err)
			}
		}
		for ; n > 0; n-- {
			k, err := readBytes(br)
			if err != nil {
				return nil, "", nil, fmt.Errorf("encode: ocf header: %w", err)
			}
			v, err := readBytes(br)
			if err != nil {
				return nil, "", nil, fmt.Errorf("encode: ocf header: %w", err)
			}
			switch string(k) {
			case "avro.schema":
				schema = v
			case "avro.codec":
				codec = Codec(v)
			}
		}
	}
	sync = make([]byte, SyncSize)
	if _, err := io.ReadFull(br, sync); err != nil {
		return nil, "", nil, fmt.Errorf("encode: ocf header: %w", err)
	}
	return schema, codec, sync, nil
}

type byteReader struct {
	r io.Reader
	b [1]byte
}

func (b *byteReader) Read(p []byte) (int, error) { return b.r.Read(p) }

func (b *byteReader) ReadByte() (byte, error) {
	_, err := io.ReadFull(b.r, b.b[:])
	return b.b[0], err
}

func readLong(r *byteReader) (int64, error) {
	u, err := binary.ReadUvarint(r)
	if err != nil {
		return 0, err
	}
	return int64(u>>1) ^ -int64(u&1), nil
}

// maxHeaderValue bounds a header value, so that a corrupt length cannot make
// ReadOCFHeader allocate without bound.
const maxHeaderValue = 16 << 20

func readBytes(r *byteReader) ([]byte, error) {
	n, err := readLong(r)
	if err != nil {
		return nil, err
	}
	if n < 0 || n > maxHeaderValue {
		return nil, fmt.Errorf("header value of %d bytes", n)
	}
	b := make([]byte, n)
	_, err = io.ReadFull(r, b)
	return b, err
}

// OCFWriter writes rows to w as an object container file, a block whenever
// the pending datums reach the block size. It belongs to one goroutine.
type OCFWriter struct {
	w         io.Writer
	ocf       *OCF
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
func NewOCFWriter(w io.Writer, schema *engine.Schema, codec Codec, blockSize int) (*OCFWriter, error) {
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
