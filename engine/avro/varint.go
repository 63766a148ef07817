package avro

import (
	"encoding/binary"
	"errors"
	"math"
)

// Errors of malformed primitives. The decoder in source/avro wraps them in
// *engine.DecodeError with the field path.
var (
	ErrTruncated      = errors.New("truncated input")
	ErrVarintOverflow = errors.New("varint overflows 64 bits")
)

// MaxVarintLen is the most bytes a long takes.
const MaxVarintLen = 10

// AppendLong appends v as an Avro int or long: zig-zag, then a varint of 7
// bits per byte, least significant group first, the high bit set on every
// byte but the last.
func AppendLong(dst []byte, v int64) []byte {
	u := uint64(v<<1) ^ uint64(v>>63)
	for u >= 0x80 {
		dst = append(dst, byte(u)|0x80)
		u >>= 7
	}
	return append(dst, byte(u))
}

// AppendString appends s as Avro bytes or string: its length as a long,
// then its bytes.
func AppendString(dst []byte, s string) []byte {
	return append(AppendLong(dst, int64(len(s))), s...)
}

// AppendBytes appends b as Avro bytes: its length as a long, then itself.
func AppendBytes(dst, b []byte) []byte {
	return append(AppendLong(dst, int64(len(b))), b...)
}

// AppendBool appends v as an Avro boolean: one byte, 0 or 1.
func AppendBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, 1)
	}
	return append(dst, 0)
}

// AppendFloat appends v as an Avro float: 4 bytes, little-endian IEEE 754.
func AppendFloat(dst []byte, v float32) []byte {
	return binary.LittleEndian.AppendUint32(dst, math.Float32bits(v))
}

// AppendDouble appends v as an Avro double: 8 bytes, little-endian IEEE 754.
func AppendDouble(dst []byte, v float64) []byte {
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
}

// Unzag undoes the zig-zag mapping of a varint read by Uvarint: the long it
// encodes.
func Unzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// Uvarint decodes the varint at buf[pos:] and returns it (still zig-zagged:
// Unzag gives the long) with the position after it. It fails with
// ErrTruncated when buf ends first and ErrVarintOverflow when the varint
// runs over ten bytes or 64 bits. With ten bytes left it runs unrolled
// without per-byte bounds checks: it is the decoder's hottest function.
func Uvarint(buf []byte, pos int) (uint64, int, error) {
	if pos >= 0 && len(buf)-pos >= MaxVarintLen {
		b := buf[pos : pos+10 : pos+10]
		x := uint64(b[0] & 0x7f)
		if b[0] < 0x80 {
			return x, pos + 1, nil
		}
		x |= uint64(b[1]&0x7f) << 7
		if b[1] < 0x80 {
			return x, pos + 2, nil
		}
		x |= uint64(b[2]&0x7f) << 14
		if b[2] < 0x80 {
			return x, pos + 3, nil
		}
		x |= uint64(b[3]&0x7f) << 21
		if b[3] < 0x80 {
			return x, pos + 4, nil
		}
		x |= uint64(b[4]&0x7f) << 28
		if b[4] < 0x80 {
			return x, pos + 5, nil
		}
		x |= uint64(b[5]&0x7f) << 35
		if b[5] < 0x80 {
			return x, pos + 6, nil
		}
		x |= uint64(b[6]&0x7f) << 42
		if b[6] < 0x80 {
			return x, pos + 7, nil
		}
		x |= uint64(b[7]&0x7f) << 49
		if b[7] < 0x80 {
			return x, pos + 8, nil
		}
		x |= uint64(b[8]&0x7f) << 56
		if b[8] < 0x80 {
			return x, pos + 9, nil
		}
		if b[9] > 1 {
			return 0, pos + 10, ErrVarintOverflow
		}
		return x | uint64(b[9])<<63, pos + 10, nil
	}
	var x uint64
	var s uint
	for i := 0; i < MaxVarintLen; i++ {
		if pos >= len(buf) {
			return 0, pos, ErrTruncated
		}
		b := buf[pos]
		pos++
		if b < 0x80 {
			if i == 9 && b > 1 {
				return 0, pos, ErrVarintOverflow
			}
			return x | uint64(b)<<s, pos, nil
		}
		x |= uint64(b&0x7f) << s
		s += 7
	}
	return 0, pos, ErrVarintOverflow
}

// ReadLong reads a long from the front of buf and returns it with the bytes
// it took.
func ReadLong(buf []byte) (int64, int, error) {
	u, n, err := Uvarint(buf, 0)
	return Unzag(u), n, err
}

// readLong reads a long from r, a byte at a time, with the checks of Uvarint.
func readLong(r interface{ ReadByte() (byte, error) }) (int64, error) {
	var u uint64
	for i := uint(0); i < MaxVarintLen; i++ {
		b, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		if b < 0x80 {
			if i == 9 && b > 1 {
				return 0, ErrVarintOverflow
			}
			return Unzag(u | uint64(b)<<(7*i)), nil
		}
		u |= uint64(b&0x7f) << (7 * i)
	}
	return 0, ErrVarintOverflow
}
