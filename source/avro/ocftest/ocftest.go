// Package ocftest writes Avro object container files for tests of the
// readers in source/avro and source/file: any codec, a chosen number of
// records per block and a fixed sync marker, over records already encoded.
// The framing is engine/avro's Container, the one the sinks write with.
package ocftest

import (
	wire "github.com/sluicehq/sluice/engine/avro"
)

// Sync is the sync marker of files written by Write.
var Sync = [wire.SyncSize]byte{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}

// Write returns an object container file holding records (single-record
// binary encodings of schema), perBlock records to a block (at least one),
// compressed with codec ("null" or empty, "deflate", "snappy", "zstandard"
// or "zstd").
func Write(schema []byte, codec string, records [][]byte, perBlock int) ([]byte, error) {
	c, err := wire.ParseCodec(codec)
	if err != nil {
		return nil, err
	}
	o, err := wire.NewContainer(schema, c, Sync[:])
	if err != nil {
		return nil, err
	}
	defer o.Close()
	out := o.AppendHeader(nil)
	perBlock = max(perBlock, 1)
	for i := 0; i < len(records); i += perBlock {
		end := min(i+perBlock, len(records))
		var raw []byte
		for _, r := range records[i:end] {
			raw = append(raw, r...)
		}
		if out, err = o.AppendBlock(out, end-i, raw); err != nil {
			return nil, err
		}
	}
	return out, nil
}
