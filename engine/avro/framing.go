package avro

import "encoding/binary"

// HeaderKey is the Kafka record header that carries a record's writer
// schema when it is not framed for a registry: the schema's JSON, or its
// 8-byte little-endian Rabin fingerprint (Fingerprint). Part of the format.
const HeaderKey = "sluice.schema"

// ConfluentMagic is the first byte of a record framed for a Confluent
// Schema Registry; ConfluentPrefix is the length of the framing (the magic
// and a 4-byte big-endian schema id). Part of the format.
const (
	ConfluentMagic  byte = 0
	ConfluentPrefix      = 5
)

// AppendConfluent appends the Confluent framing of schema id: 0x00, then id
// as a big-endian uint32. The datum follows it.
func AppendConfluent(dst []byte, id uint32) []byte {
	return binary.BigEndian.AppendUint32(append(dst, ConfluentMagic), id)
}

// ParseConfluent splits a record framed for a registry into its schema id
// and its datum; ok is false when b is not so framed.
func ParseConfluent(b []byte) (id uint32, datum []byte, ok bool) {
	if len(b) < ConfluentPrefix || b[0] != ConfluentMagic {
		return 0, nil, false
	}
	return binary.BigEndian.Uint32(b[1:ConfluentPrefix]), b[ConfluentPrefix:], true
}
