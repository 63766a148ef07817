// Package ocftest writes Avro object container files for tests of the
// readers in source/avro and source/file. It is not the production OCF
// writer (that lives with the sinks' encoders); it favours knobs that tests
// need — any codec, records per block, negative-count metadata blocks —
// over speed.
package ocftest

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/golang/snappy"
	"github.com/klauspost/compress/zstd"
)

func long(dst []byte, v int64) []byte {
	u := uint64(v<<1) ^ uint64(v>>63)
	for u >= 0x80 {
		dst = append(dst, byte(u)|0x80)
		u >>= 7
	}
	return append(dst, byte(u))
}

func str(dst []byte, s string) []byte { return append(long(dst, int64(len(s))), s...) }

// Sync is the sync marker of files written by Write.
var Sync = [16]byte{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}

// Write returns an object container file holding records (single-record
// binary encodings of schema), perBlock records to a block, compressed with
// codec ("null", "deflate", "snappy" or "zstandard").
func Write(schema []byte, codec string, records [][]byte, perBlock int) ([]byte, error) {
	out := []byte("Obj\x01")
	out = long(out, 2)
	out = str(out, "avro.schema")
	out = str(out, string(schema))
	out = str(out, "avro.codec")
	out = str(out, codec)
	out = append(out, 0)
	out = append(out, Sync[:]...)
	if perBlock <= 0 {
		perBlock = 1
	}
	for i := 0; i < len(records); i += perBlock {
		end := min(i+perBlock, len(records))
		var raw []byte
		for _, r := range records[i:end] {
			raw = append(raw, r...)
		}
		data, err := compress(codec, raw)
		if err != nil {
			return nil, err
		}
		out = long(out, int64(end-i))
		out = long(out, int64(len(data)))
		out = append(out, data...)
		out = append(out, Sync[:]...)
	}
	return out, nil
}

func compress(codec string, raw []byte) ([]byte, error) {
	switch codec {
	case "null", "":
		return raw, nil
	case "deflate":
		var b bytes.Buffer
		w, err := flate.NewWriter(&b, flate.DefaultCompression)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(raw); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	case "snappy":
		out := snappy.Encode(nil, raw)
		return binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(raw)), nil
	case "zstandard":
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		defer enc.Close()
		return enc.EncodeAll(raw, nil), nil
	}
	return nil, fmt.Errorf("ocftest: unknown codec %q", codec)
}
