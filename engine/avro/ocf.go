package avro

import (
	"bufio"
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
)

// Magic starts every object container file. Part of the format, never change.
var Magic = [4]byte{'O', 'b', 'j', 1}

// SyncSize is the size of an object container file's sync marker.
const SyncSize = 16

// Metadata keys of an object container file's header.
const (
	MetaSchema = "avro.schema"
	MetaCodec  = "avro.codec"
)

// Codec is a block compression codec, named as in avro.codec.
type Codec string

// Codecs of the Avro specification that this package reads and writes.
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
	return "", fmt.Errorf("unknown avro codec %q (expected null, deflate, snappy or zstd)", s)
}

// ErrCorruptOCF marks an object container file that cannot be read: a bad
// magic, header, sync marker, block or checksum.
var ErrCorruptOCF = errors.New("corrupt avro object container file")

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorruptOCF, fmt.Sprintf(format, args...))
}

// Bounds of a header, so that a corrupt length cannot make a reader
// allocate without bound.
const (
	maxMetaEntries = 1 << 16
	maxMetaKey     = 1 << 20
	maxMetaValue   = 16 << 20
)

// Header is what an object container file says before its first block.
type Header struct {
	Schema []byte            // avro.schema: the writer schema, JSON
	Codec  Codec             // avro.codec; null when absent or empty
	Sync   [SyncSize]byte    // repeated after every block
	Meta   map[string][]byte // every metadata entry, the two above included
}

// ReadHeader reads the header of an object container file from r, for a
// writer that appends blocks to an existing file. It reads ahead of the
// header unless r is an io.ByteReader. Every failure wraps ErrCorruptOCF.
func ReadHeader(r io.Reader) (*Header, error) {
	br, ok := r.(byteReader)
	if !ok {
		br = bufio.NewReader(r)
	}
	return readHeader(br)
}

type byteReader interface {
	io.Reader
	io.ByteReader
}

func readHeader(r byteReader) (*Header, error) {
	var magic [4]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return nil, corrupt("header: %v", err)
	}
	if magic != Magic {
		return nil, corrupt("bad magic %q", magic[:])
	}
	h := &Header{Codec: CodecNull, Meta: make(map[string][]byte)}
	for {
		n, err := readLong(r)
		if err != nil {
			return nil, corrupt("metadata: %v", err)
		}
		if n == 0 {
			break
		}
		if n < 0 {
			n = -n
			if _, err := readLong(r); err != nil {
				return nil, corrupt("metadata: %v", err)
			}
		}
		if n > maxMetaEntries {
			return nil, corrupt("metadata: %d entries", n)
		}
		for i := int64(0); i < n; i++ {
			k, err := readBytes(r, maxMetaKey)
			if err != nil {
				return nil, corrupt("metadata key: %v", err)
			}
			v, err := readBytes(r, maxMetaValue)
			if err != nil {
				return nil, corrupt("metadata value: %v", err)
			}
			h.Meta[string(k)] = v
		}
	}
	if _, err := io.ReadFull(r, h.Sync[:]); err != nil {
		return nil, corrupt("sync marker: %v", err)
	}
	h.Schema = h.Meta[MetaSchema]
	if h.Schema == nil {
		return nil, corrupt("no avro.schema in the header")
	}
	if c := h.Meta[MetaCodec]; len(c) > 0 {
		h.Codec = Codec(c)
	}
	return h, nil
}

func readBytes(r byteReader, max int64) ([]byte, error) {
	n, err := readLong(r)
	if err != nil {
		return nil, err
	}
	if n < 0 || n > max {
		return nil, fmt.Errorf("length %d out of range", n)
	}
	return readN(r, n)
}

// readN reads exactly n bytes without trusting n for the allocation: a
// hostile length costs only the bytes actually there.
func readN(r io.Reader, n int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, n))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != n {
		return nil, io.ErrUnexpectedEOF
	}
	return b, nil
}

// DefaultMaxBlockBytes bounds a block of an object container file, compressed
// and decompressed, unless WithMaxBlockBytes says otherwise.
const DefaultMaxBlockBytes = 64 << 20

// BlockReader reads an object container file block by block. It does not
// parse the schema nor split a block into records: that needs the schema,
// which the decoder (source/avro) compiles. It is used by one goroutine.
type BlockReader struct {
	r        *bufio.Reader
	h        *Header
	maxBlock int
	zstd     *zstd.Decoder
}

// BlockOption configures NewBlockReader.
type BlockOption func(*blockOptions)

type blockOptions struct {
	maxBlock int
}

// WithMaxBlockBytes bounds a block, compressed and decompressed (default
// DefaultMaxBlockBytes).
func WithMaxBlockBytes(n int) BlockOption { return func(o *blockOptions) { o.maxBlock = n } }

// NewBlockReader reads the header of the object container file r and
// prepares the decompressor of its codec. A codec other than null, deflate,
// snappy and zstandard is an error.
func NewBlockReader(r io.Reader, opts ...BlockOption) (*BlockReader, error) {
	o := blockOptions{maxBlock: DefaultMaxBlockBytes}
	for _, opt := range opts {
		opt(&o)
	}
	b := &BlockReader{r: bufio.NewReaderSize(r, 64<<10), maxBlock: o.maxBlock}
	var err error
	if b.h, err = readHeader(b.r); err != nil {
		return nil, err
	}
	switch b.h.Codec {
	case CodecNull, CodecDeflate, CodecSnappy:
	case CodecZstd:
		if b.zstd, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(b.maxBlock))); err != nil {
			return nil, fmt.Errorf("avro ocf: zstd: %w", err)
		}
	default:
		return nil, fmt.Errorf("avro ocf: unsupported codec %q", b.h.Codec)
	}
	return b, nil
}

// Header is the file's header.
func (b *BlockReader) Header() *Header { return b.h }

// Close releases the decompressor. It does not close the underlying reader.
func (b *BlockReader) Close() error {
	if b.zstd != nil {
		b.zstd.Close()
		b.zstd = nil
	}
	return nil
}

// Next reads the next block and returns its record count and decompressed
// data (a buffer of its own, never reused), io.EOF after the last block.
// Any other error wraps ErrCorruptOCF. The count is not checked against the
// data: only the schema knows how small a record can be.
func (b *BlockReader) Next() (int64, []byte, error) {
	count, err := readLong(b.r)
	if err == io.EOF {
		return 0, nil, io.EOF
	}
	if err != nil {
		return 0, nil, corrupt("block count: %v", err)
	}
	size, err := readLong(b.r)
	if err != nil {
		return 0, nil, corrupt("block size: %v", err)
	}
	if count < 0 || size < 0 || size > int64(b.maxBlock) || count > int64(b.maxBlock) {
		return 0, nil, corrupt("block of %d records in %d bytes", count, size)
	}
	data, err := readN(b.r, size)
	if err != nil {
		return 0, nil, corrupt("block data: %v", err)
	}
	var sync [SyncSize]byte
	if _, err := io.ReadFull(b.r, sync[:]); err != nil {
		return 0, nil, corrupt("block sync marker: %v", err)
	}
	if sync != b.h.Sync {
		return 0, nil, corrupt("sync marker mismatch")
	}
	switch b.h.Codec {
	case CodecDeflate:
		fr := flate.NewReader(bytes.NewReader(data))
		data, err = io.ReadAll(io.LimitReader(fr, int64(b.maxBlock)+1))
		if err == nil && len(data) > b.maxBlock {
			err = fmt.Errorf("decompressed block over %d bytes", b.maxBlock)
		}
		if err != nil {
			return 0, nil, corrupt("deflate: %v", err)
		}
	case CodecSnappy:
		if len(data) < 4 {
			return 0, nil, corrupt("snappy block without checksum")
		}
		n, err := snappy.DecodedLen(data[:len(data)-4])
		if err != nil || n > b.maxBlock {
			return 0, nil, corrupt("snappy block of %d bytes: %v", n, err)
		}
		out, err := snappy.Decode(make([]byte, n), data[:len(data)-4])
		if err != nil {
			return 0, nil, corrupt("snappy: %v", err)
		}
		if crc32.ChecksumIEEE(out) != binary.BigEndian.Uint32(data[len(data)-4:]) {
			return 0, nil, corrupt("snappy checksum mismatch")
		}
		data = out
	case CodecZstd:
		out, err := b.zstd.DecodeAll(data, nil)
		if err != nil {
			return 0, nil, corrupt("zstd: %v", err)
		}
		if len(out) > b.maxBlock {
			return 0, nil, corrupt("decompressed block over %d bytes", b.maxBlock)
		}
		data = out
	}
	return count, data, nil
}

// Container frames datums as an object container file: AppendHeader once
// at the start of a file, then AppendBlock for each block of datums. It
// keeps the compressor of its codec, so it belongs to one goroutine at a
// time; blocks made by several Containers with the same schema, codec and
// sync marker may be appended to one file.
type Container struct {
	schema []byte
	codec  Codec
	sync   [SyncSize]byte

	flate *flate.Writer
	zstd  *zstd.Encoder
	cbuf  bytes.Buffer
	sbuf  []byte
}

// NewContainer prepares the framing of datums of the schema (JSON) with
// codec and sync marker (a random one when sync is nil).
func NewContainer(schema []byte, codec Codec, sync []byte) (*Container, error) {
	o := &Container{schema: schema, codec: codec}
	if sync == nil {
		_, _ = rand.Read(o.sync[:])
	} else if len(sync) != SyncSize {
		return nil, fmt.Errorf("avro ocf: sync marker of %d bytes, want %d", len(sync), SyncSize)
	} else {
		copy(o.sync[:], sync)
	}
	switch codec {
	case CodecNull, CodecSnappy:
	case CodecDeflate:
		o.flate, _ = flate.NewWriter(nil, flate.DefaultCompression)
	case CodecZstd:
		var err error
		if o.zstd, err = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1)); err != nil {
			return nil, fmt.Errorf("avro ocf: zstd: %w", err)
		}
	default:
		return nil, fmt.Errorf("avro ocf: unknown codec %q", codec)
	}
	return o, nil
}

// Sync returns the file's sync marker.
func (o *Container) Sync() []byte { return o.sync[:] }

// Schema returns the schema JSON written in the header.
func (o *Container) Schema() []byte { return o.schema }

// AppendHeader appends the file header: the magic, a metadata map of one
// block holding avro.schema and avro.codec, and the sync marker.
func (o *Container) AppendHeader(dst []byte) []byte {
	dst = append(dst, Magic[:]...)
	dst = AppendLong(dst, 2)
	dst = AppendString(dst, MetaSchema)
	dst = AppendBytes(dst, o.schema)
	dst = AppendString(dst, MetaCodec)
	dst = AppendString(dst, string(o.codec))
	dst = append(dst, 0)
	return append(dst, o.sync[:]...)
}

// AppendBlock appends a block of count datums, whose concatenated encodings
// are data, compressed with the codec. An empty block (count 0) appends
// nothing.
func (o *Container) AppendBlock(dst []byte, count int, data []byte) ([]byte, error) {
	if count == 0 {
		return dst, nil
	}
	dst = AppendLong(dst, int64(count))
	switch o.codec {
	case CodecNull:
		dst = AppendBytes(dst, data)
	case CodecDeflate:
		o.cbuf.Reset()
		o.flate.Reset(&o.cbuf)
		if _, err := o.flate.Write(data); err != nil {
			return dst, fmt.Errorf("avro ocf: deflate: %w", err)
		}
		if err := o.flate.Close(); err != nil {
			return dst, fmt.Errorf("avro ocf: deflate: %w", err)
		}
		dst = AppendBytes(dst, o.cbuf.Bytes())
	case CodecSnappy:
		o.sbuf = snappy.Encode(o.sbuf[:cap(o.sbuf)], data)
		dst = AppendLong(dst, int64(len(o.sbuf)+4))
		dst = append(dst, o.sbuf...)
		dst = binary.BigEndian.AppendUint32(dst, crc32.ChecksumIEEE(data))
	case CodecZstd:
		o.sbuf = o.zstd.EncodeAll(data, o.sbuf[:0])
		dst = AppendBytes(dst, o.sbuf)
	}
	return append(dst, o.sync[:]...), nil
}

// Close releases the compressor.
func (o *Container) Close() error {
	if o.zstd != nil {
		return o.zstd.Close()
	}
	return nil
}
