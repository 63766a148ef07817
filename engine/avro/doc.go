// Package avro owns the Avro binary format, both directions: the primitives
// of the binary encoding (append and read), schemas written as JSON
// (Parsing Canonical Form and a full form), fingerprints, object container
// files (read and write, every codec sluice supports) and the framings of
// records on Kafka. It knows bytes and engine.Type, nothing else: no I/O
// beyond an io.Reader of a container file, no decoding of records into rows.
//
// It lives under engine/ because both sides use it and components never
// import each other: the decoder (source/avro, which parses schemas and
// compiles record programs), the encoders of the sinks (sink/encode, and
// through it the file, object and Kafka sinks), the traffic generator
// (source/generate) and the test writer of container files
// (source/avro/ocftest). Its name clashes with source/avro's: that package
// imports it as wire.
//
// # Binary encoding, byte by byte
//
// int and long: zig-zag (0, -1, 1, -2 … become 0, 1, 2, 3 …), then a varint
// of 7 bits per byte, least significant group first, the high bit set on
// all but the last byte: at most 10 bytes (AppendLong, Uvarint, Unzag).
// float and double: 4 and 8 bytes, little-endian IEEE 754. boolean: one
// byte, 0 or 1. bytes and string: a long length, then the bytes. fixed: its
// size in bytes. enum: a long index. union: a long branch index, then the
// branch's value. record: its fields in order, nothing else. array and map:
// blocks, each a long count then that many items (map: a string key before
// each value); a negative count -n is followed by a long byte size of the
// block's n items; a zero count ends the value.
//
// # Schemas and fingerprints
//
// Canonical writes the Parsing Canonical Form of a type; Fingerprint is the
// CRC-64-AVRO Rabin fingerprint of it (Rabin, polynomial 0xc15d213aa4d7a795).
// Schema writes the same layout with docs, logical types, defaults, aliases
// and enum defaults kept; it names unnamed types after their path below
// RowName, so that a type built by the SQL planner has a valid schema. One
// writer makes both, so that the two can never disagree about layout.
//
// # Object container files
//
// A file is a header, then blocks:
//
//	magic   4 bytes "Obj" 0x01
//	meta    an Avro map<bytes>: "avro.schema" (the writer schema, JSON) and
//	        "avro.codec" (null, deflate, snappy or zstandard; absent = null)
//	sync    16 bytes, repeated after every block
//
// and each block:
//
//	count   long, records in the block
//	size    long, bytes of the (compressed) data
//	data    the records' binary encodings, concatenated, compressed by the
//	        codec (deflate: raw RFC 1951; snappy: snappy block followed by
//	        the big-endian CRC-32 (IEEE) of the uncompressed data;
//	        zstandard: one zstd frame)
//	sync    the header's 16 bytes
//
// Container writes exactly that: a header with a metadata map of one block
// of two entries (avro.schema, avro.codec) and blocks of count > 0.
// BlockReader reads any file the specification allows (several metadata
// blocks, negative block counts in the metadata) and returns each block's
// count and decompressed data; splitting a block into records needs the
// schema and is source/avro's. Every length is checked before it is used
// (metadata entries, keys and values, blocks compressed and decompressed
// are bounded: DefaultMaxBlockBytes), so a corrupt or hostile file costs
// only its own bytes and fails with an error wrapping ErrCorruptOCF.
// ReadHeader reads the header alone, for a writer that appends blocks to an
// existing file with its sync marker.
//
// # Records on Kafka
//
// A record framed for a Confluent Schema Registry is 0x00, the schema id as
// a big-endian uint32, then the datum (AppendConfluent, ParseConfluent).
// Otherwise the header HeaderKey ("sluice.schema") may carry the writer
// schema's JSON or its 8-byte little-endian fingerprint.
//
// # Concurrency
//
// The functions are pure and safe for concurrent use. A Container or a
// BlockReader holds (de)compression state and belongs to one goroutine at a
// time.
package avro
