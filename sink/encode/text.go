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
// type l (see the package documentation for the forms). Dates of years 0
// to 9999 are written by hand, as time.Time.AppendFormat writes them but
// several times faster (every JSON or CSV row of a log has a timestamp or
// two); others go through AppendFormat.
func appendTime(dst []byte, l engine.Logical, v int64) []byte {
	switch l {
	case engine.Date:
		if v >= minCivilDay && v <= maxCivilDay {
			return appendDate(dst, v)
		}
		return time.Unix(v*86400, 0).UTC().AppendFormat(dst, "2006-01-02")
	case engine.TimeMillis, engine.TimeMicros:
		us := v * l.MicrosPerUnit()
		return appendClock(dst, us-floorDiv(us, microsPerDay)*microsPerDay)
	case engine.TimestampMillis, engine.TimestampMicros, engine.LocalTimestampMillis, engine.LocalTimestampMicros:
		us := v * l.MicrosPerUnit()
		local := l == engine.LocalTimestampMillis || l == engine.LocalTimestampMicros
		if day := floorDiv(us, microsPerDay); day >= minCivilDay && day <= maxCivilDay {
			dst = appendDate(dst, day)
			dst = append(dst, 'T')
			dst = appendClock(dst, us-day*microsPerDay)
			if local {
				return dst
			}
			return append(dst, 'Z')
		}
		if local {
			return time.UnixMicro(us).UTC().AppendFormat(dst, "2006-01-02T15:04:05.000000")
		}
		return time.UnixMicro(us).UTC().AppendFormat(dst, "2006-01-02T15:04:05.000000Z07:00")
	}
	return strconv.AppendInt(dst, v, 10)
}

const microsPerDay = 86400 * 1_000_000

// The days since 1970-01-01 of 0000-01-01 and 9999-12-31: the dates whose
// year AppendFormat writes as four digits.
const (
	minCivilDay = -719528
	maxCivilDay = 2932896
)

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// appendDate appends day (days since 1970-01-01, within [minCivilDay,
// maxCivilDay]) as YYYY-MM-DD, by the proleptic Gregorian calendar
// (H. Hinnant's days_from_civil inverse).
func appendDate(dst []byte, day int64) []byte {
	z := day + 719468 // days since 0000-03-01
	era := floorDiv(z, 146097)
	doe := z - era*146097                                  // [0, 146096]
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365 // [0, 399]
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100) // [0, 365], from March 1st
	mp := (5*doy + 2) / 153                  // [0, 11], March = 0
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
		y++
	}
	return append(dst,
		byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+m/10), byte('0'+m%10), '-',
		byte('0'+d/10), byte('0'+d%10))
}

// appendClock appends us, microseconds into a day ([0, microsPerDay)), as
// HH:MM:SS.ffffff.
func appendClock(dst []byte, us int64) []byte {
	sec := us / 1_000_000
	frac := us % 1_000_000
	h, mi, s := sec/3600, sec/60%60, sec%60
	return append(dst,
		byte('0'+h/10), byte('0'+h%10), ':',
		byte('0'+mi/10), byte('0'+mi%10), ':',
		byte('0'+s/10), byte('0'+s%10), '.',
		byte('0'+frac/100000), byte('0'+frac/10000%10), byte('0'+frac/1000%10),
		byte('0'+frac/100%10), byte('0'+frac/10%10), byte('0'+frac%10))
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
