package encode

import (
	"encoding/binary"
	"math"
	"math/big"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/engine"
)

const hexDigits = "0123456789abcdef"

// jsonSafe[b] is true for ASCII bytes that need no escaping in a JSON string.
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for i := 0x20; i < utf8.RuneSelf; i++ {
		t[i] = i != '"' && i != '\\'
	}
	return t
}()

// appendJSONString appends s as a quoted JSON string.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = appendJSONEscaped(dst, s)
	return append(dst, '"')
}

// appendJSONEscaped appends the escaped content of a JSON string, without quotes.
func appendJSONEscaped(dst []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if jsonSafe[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		// U+2028 and U+2029 are valid JSON but break JavaScript parsers.
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(dst, s[start:]...)
}

// appendFloat appends f as encoding/json does; NaN and infinities, which JSON
// lacks, become NaN, Infinity and -Infinity (the caller quotes them in JSON).
func appendFloat(dst []byte, f float64, bits int) ([]byte, bool) {
	switch {
	case math.IsNaN(f):
		return append(dst, "NaN"...), false
	case math.IsInf(f, 1):
		return append(dst, "Infinity"...), false
	case math.IsInf(f, -1):
		return append(dst, "-Infinity"...), false
	}
	abs := math.Abs(f)
	fmt := byte('f')
	if abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			fmt = 'e'
		}
	}
	dst = strconv.AppendFloat(dst, f, fmt, -1, bits)
	if fmt == 'e' {
		// clean up e-09 to e-9, as encoding/json does
		n := len(dst)
		if n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst, true
}

// appendTime appends the text of a date, time or timestamp value v of logical
// type l (see the package documentation for the forms).
func appendTime(dst []byte, l engine.Logical, v int64) []byte {
	switch l {
	case engine.Date:
		return time.Unix(v*86400, 0).UTC().AppendFormat(dst, "2006-01-02")
	case engine.TimeMillis, engine.TimeMicros:
		us := v * l.MicrosPerUnit()
		return time.UnixMicro(us).UTC().AppendFormat(dst, "15:04:05.000000")
	case engine.TimestampMillis, engine.TimestampMicros:
		return time.UnixMicro(v*l.MicrosPerUnit()).UTC().AppendFormat(dst, "2006-01-02T15:04:05.000000Z07:00")
	case engine.LocalTimestampMillis, engine.LocalTimestampMicros:
		return time.UnixMicro(v*l.MicrosPerUnit()).UTC().AppendFormat(dst, "2006-01-02T15:04:05.000000")
	}
	return strconv.AppendInt(dst, v, 10)
}

// isTime reports whether values of l are written by appendTime.
func isTime(l engine.Logical) bool {
	return l == engine.Date || l == engine.TimeMillis || l == engine.TimeMicros || l.IsTimestamp()
}

// appendDecimal appends the decimal number whose unscaled value is the
// big-endian two's-complement b, with scale digits after the point.
func appendDecimal(dst []byte, b string, scale int) []byte {
	start := len(dst)
	if len(b) <= 8 {
		var v int64
		if len(b) > 0 && b[0]&0x80 != 0 {
			v = -1
		}
		for i := 0; i < len(b); i++ {
			v = v<<8 | int64(b[i])
		}
		if v < 0 {
			dst = append(dst, '-')
			start++
			// -MinInt64 overflows; its magnitude as uint64 is exact.
			dst = strconv.AppendUint(dst, uint64(-(v+1))+1, 10)
		} else {
			dst = strconv.AppendUint(dst, uint64(v), 10)
		}
	} else {
		var x big.Int
		x.SetBytes([]byte(b))
		if b[0]&0x80 != 0 {
			x.Sub(&x, new(big.Int).Lsh(big.NewInt(1), uint(len(b)*8)))
		}
		if x.Sign() < 0 {
			dst = append(dst, '-')
			start++
			x.Neg(&x)
		}
		dst = x.Append(dst, 10)
	}
	if scale <= 0 {
		return dst
	}
	digits := len(dst) - start
	if digits <= scale {
		// pad to 0.00ddd
		pad := scale - digits + 1
		dst = append(dst, make([]byte, pad)...)
		copy(dst[start+pad:], dst[start:start+digits])
		for i := 0; i < pad; i++ {
			dst[start+i] = '0'
		}
		digits += pad
	}
	dot := start + digits - scale
	dst = append(dst, 0)
	copy(dst[dot+1:], dst[dot:len(dst)-1])
	dst[dot] = '.'
	return dst
}

// duration splits an Avro duration (fixed 12: three little-endian uint32s).
func duration(s string) (months, days, millis uint32, ok bool) {
	if len(s) != 12 {
		return 0, 0, 0, false
	}
	b := engine.UnsafeBytes(s)
	return binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:]), binary.LittleEndian.Uint32(b[8:]), true
}
