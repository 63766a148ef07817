package avro

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/golang/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/sluicehq/sluice/engine"
)

// ocfMagic starts every object container file. Part of the format.
var ocfMagic = [4]byte{'O', 'b', 'j', 1}

// Codecs of object container files.
const (
	CodecNull    = "null"
	CodecDeflate = "deflate"
	CodecSnappy  = "snappy"
	CodecZstd    = "zstandard"
)

// ErrCorruptOCF marks an object container file that cannot be read: a bad
// magic, header, sync marker, block or checksum.
var ErrCorruptOCF = errors.New("corrupt avro object container file")

// DefaultMaxBlockBytes bounds a block of an object container file, compressed
// and decompressed, unless OCFMaxBlockBytes says otherwise.
const DefaultMaxBlockBytes = 64 << 20

// OCFReader reads an Avro object container file block by block and splits
// blocks into the binary encodings of single records. It is used by one
// goroutine.
type OCFReader struct {
	r        *bufio.Reader
	schema   *engine.Type
	raw      []byte
	codec    string
	meta     map[string][]byte
	sync     [16]byte
	maxBlock int
	zstd     *zstd.Decoder

	block []byte // the current block's decompressed data
	left  int64  // records left in it
	pos   int
	err   error
}

// OCFOption tunes an OCFReader.
type OCFOption func(*OCFReader)

// OCFMaxBlockBytes bounds a block, compressed and decompressed (default
// DefaultMaxBlockBytes).
func OCFMaxBlockBytes(n int) OCFOption { return func(r *OCFReader) { r.maxBlock = n } }

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorruptOCF, fmt.Sprintf(format, args...))
}

// NewOCFReader reads the header of an object container file:
//
//	magic   4 bytes "Obj" 0x01
//	meta    an Avro map<bytes>: "avro.schema" (the writer schema, JSON) and
//	        "avro.codec" (null, deflate, snappy or zstandard; absent = null)
//	sync    16 bytes, repeated after every block
//
// and then blocks, each:
//
//	count   long, records in the block
//	size    long, bytes of the (compressed) data
//	data    the records' binary encodings, concatenated, compressed by the
//	        codec (deflate: raw RFC 1951; snappy: snappy block followed by
//	        the big-endian CRC-32 (IEEE) of the uncompressed data;
//	        zstandard: one zstd frame)
//	sync    the header's 16 bytes
func NewOCFReader(r io.Reader, opts ...OCFOption) (*OCFReader, error) {
	o := &OCFReader{r: bufio.NewReaderSize(r, 64<<10), maxBlock: DefaultMaxBlockBytes, meta: make(map[string][]byte)}
	for _, opt := range opts {
		opt(o)
	}
	var magic [4]byte
	if _, err := io.ReadFull(o.r, magic[:]); err != nil {
		return nil, corrupt("header: %v", err)
	}
	if magic != ocfMagic {
		return nil, corrupt("bad magic %q", magic[:])
	}
	for {
		n, err := o.long()
		if err != nil {
			return nil, corrupt("metadata: %v", err)
		}
		if n == 0 {
			break
		}
		if n < 0 {
			n = -n
			if _, err := o.long(); err != nil {
				return nil, corrupt("metadata: %v", err)
			}
		}
		if n > 1<<16 {
			return nil, corrupt("metadata: %d entries", n)
		}
		for i := int64(0); i < n; i++ {
			k, err := o.bytes(1 << 20)
			if err != nil {
				return nil, corrupt("metadata key: %v", err)
			}
			v, err := o.bytes(16 << 20)
			if err != nil {
				return nil, corrupt("metadata value: %v", err)
			}
			o.meta[string(k)] = v
		}
	}
	if _, err := io.ReadFull(o.r, o.sync[:]); err != nil {
		return nil, corrupt("sync marker: %v", err)
	}
	o.raw = o.meta["avro.schema"]
	if o.raw == nil {
		return nil, corrupt("no avro.schema in the header")
	}
	var err error
	if o.schema, err = ParseSchema(o.raw); err != nil {
		return nil, fmt.Errorf("avro ocf: writer schema: %w", err)
	}
	o.codec = CodecNull
	if c, ok := o.meta["avro.codec"]; ok && len(c) > 0 {
		o.codec = string(c)
	}
	switch o.codec {
	case CodecNull, CodecDeflate, CodecSnappy:
	case CodecZstd:
		if o.zstd, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(o.maxBlock))); err != nil {
			return nil, fmt.Errorf("avro ocf: zstd: %w", err)
		}
	default:
		return nil, fmt.Errorf("avro ocf: unsupported codec %q", o.codec)
	}
	return o, nil
}

// Schema is the writer schema the file holds.
func (o *OCFReader) Schema() *engine.Type { return o.schema }

// SchemaText is the writer schema's JSON as the file holds it.
func (o *OCFReader) SchemaText() []byte { return o.raw }

// Codec names the file's codec.
func (o *OCFReader) Codec() string { return o.codec }

// Meta returns a metadata value of the header, nil when absent.
func (o *OCFReader) Meta(key string) []byte { return o.meta[key] }

// Close releases the decompressor. It does not close the underlying reader.
func (o *OCFReader) Close() error {
	if o.zstd != nil {
		o.zstd.Close()
		o.zstd = nil
	}
	return nil
}

func (o *OCFReader) long() (int64, error) {
	var u uint64
	for i := uint(0); i < 10; i++ {
		b, err := o.r.ReadByte()
		if err != nil {
			return 0, err
		}
		u |= uint64(b&0x7f) << (7 * i)
		if b < 0x80 {
			return int64(u>>1) ^ -int64(u&1), nil
		}
	}
	return 0, ErrVarintOverflow
}

func (o *OCFReader) bytes(max int64) ([]byte, error) {
	n, err := o.long()
	if err != nil {
		return nil, err
	}
	if n < 0 || n > max {
		return nil, fmt.Errorf("length %d out of range", n)
	}
	return readN(o.r, n)
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
	count, err := o.long()
	if err == io.EOF {
		return io.EOF
	}
	if err != nil {
		return corrupt("block count: %v", err)
	}
	size, err := o.long()
	if err != nil {
		return corrupt("block size: %v", err)
	}
	if count < 0 || size < 0 || size > int64(o.maxBlock) {
		return corrupt("block of %d records in %d bytes", count, size)
	}
	data, err := readN(o.r, size)
	if err != nil {
		return corrupt("block data: %v", err)
	}
	var sync [16]byte
	if _, err := io.ReadFull(o.r, sync[:]); err != nil {
		return corrupt("block sync marker: %v", err)
	}
	if sync != o.sync {
		return corrupt("sync marker mismatch")
	}
	switch o.codec {
	case CodecDeflate:
		fr := flate.NewReader(bytes.NewReader(data))
		data, err = io.ReadAll(io.LimitReader(fr, int64(o.maxBlock)+1))
		if err == nil && len(data) > o.maxBlock {
			err = fmt.Errorf("decompressed block over %d bytes", o.maxBlock)
		}
		if err != nil {
			return corrupt("deflate: %v", err)
		}
	case CodecSnappy:
		if len(data) < 4 {
			return corrupt("snappy block without checksum")
		}
		n, err := snappy.DecodedLen(data[:len(data)-4])
		if err != nil || n > o.maxBlock {
			return corrupt("snappy block of %d bytes: %v", n, err)
		}
		out, err := snappy.Decode(make([]byte, n), data[:len(data)-4])
		if err != nil {
			return corrupt("snappy: %v", err)
		}
		if crc32.ChecksumIEEE(out) != binary.BigEndian.Uint32(data[len(data)-4:]) {
			return corrupt("snappy checksum mismatch")
		}
		data = out
	case CodecZstd:
		out, err := o.zstd.DecodeAll(data, nil)
		if err != nil {
			return corrupt("zstd: %v", err)
		}
		if len(out) > o.maxBlock {
			return corrupt("decompressed block over %d bytes", o.maxBlock)
		}
		data = out
	}
	if m := minSize(o.schema); m > 0 && count > int64(len(data)/m) || count > int64(o.maxBlock) {
		return corrupt("block claims %d records in %d bytes", count, len(data))
	}
	o.block, o.pos, o.left = data, 0, count
	return nil
}
