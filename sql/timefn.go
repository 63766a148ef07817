package sql

import (
	"fmt"
	"strconv"
	"time"
)

// Time values are microseconds since the epoch in UTC; every time function
// works in UTC (MySQL with time_zone = '+00:00').

const (
	microsPerSecond = 1000000
	microsPerDay    = 86400 * microsPerSecond
)

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func utc(us int64) time.Time { return time.UnixMicro(us).UTC() }

func appendDate(b []byte, days int64) []byte {
	return utc(days*microsPerDay).AppendFormat(b, "2006-01-02")
}

// appendTimestamp appends 'YYYY-MM-DD hh:mm:ss', with '.ffffff' when the
// value has a fraction of a second.
func appendTimestamp(b []byte, us int64) []byte {
	t := utc(us)
	if us%microsPerSecond != 0 {
		return t.AppendFormat(b, "2006-01-02 15:04:05.000000")
	}
	return t.AppendFormat(b, "2006-01-02 15:04:05")
}

// timeNumber is MySQL's numeric form of a timestamp: YYYYMMDDhhmmss.
func timeNumber(us int64) int64 {
	t := utc(us)
	y, m, d := t.Date()
	return ((int64(y)*100+int64(m))*100+int64(d))*1000000 + int64(t.Hour())*10000 + int64(t.Minute())*100 + int64(t.Second())
}

// numberTime reads YYYYMMDD or YYYYMMDDhhmmss, as MySQL does for numbers used
// as dates.
func numberTime(v int64) (int64, bool) {
	if v <= 0 {
		return 0, false
	}
	var hms int64
	if v > 99991231 {
		hms, v = v%1000000, v/1000000
	}
	y, mo, d := int(v/10000), int(v/100%100), int(v%100)
	h, mi, s := int(hms/10000), int(hms/100%100), int(hms%100)
	if !validDate(y, mo, d) || h > 23 || mi > 59 || s > 59 {
		return 0, false
	}
	return time.Date(y, time.Month(mo), d, h, mi, s, 0, time.UTC).UnixMicro(), true
}

func validDate(y, m, d int) bool {
	if y < 0 || y > 9999 || m < 1 || m > 12 || d < 1 {
		return false
	}
	return d <= time.Date(y, time.Month(m)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// parseDatetime reads 'YYYY-MM-DD', 'YYYY-MM-DD hh:mm:ss[.f...]' and the same
// with 'T' and an optional 'Z', without allocating. It reports false for
// anything else (MySQL: NULL with a warning).
func parseDatetime(s string) (int64, bool) {
	num := func(i, n int) (int, bool) {
		if i+n > len(s) {
			return 0, false
		}
		v := 0
		for _, c := range []byte(s[i : i+n]) {
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	y, ok1 := num(0, 4)
	mo, ok2 := num(5, 2)
	d, ok3 := num(8, 2)
	if !ok1 || !ok2 || !ok3 || s[4] != '-' || s[7] != '-' || !validDate(y, mo, d) {
		return 0, false
	}
	var h, mi, sec, us int
	i := 10
	if i < len(s) {
		if s[i] != ' ' && s[i] != 'T' {
			return 0, false
		}
		var ok4, ok5, ok6 bool
		h, ok4 = num(11, 2)
		mi, ok5 = num(14, 2)
		sec, ok6 = num(17, 2)
		if !ok4 || !ok5 || !ok6 || s[13] != ':' || s[16] != ':' || h > 23 || mi > 59 || sec > 59 {
			return 0, false
		}
		i = 19
		if i < len(s) && s[i] == '.' {
			i++
			digits := 0
			for i < len(s) && s[i] >= '0' && s[i] <= '9' {
				if digits < 6 {
					us = us*10 + int(s[i]-'0')
				}
				digits++
				i++
			}
			if digits == 0 {
				return 0, false
			}
			for ; digits < 6; digits++ {
				us *= 10
			}
		}
		if i < len(s) && s[i] == 'Z' {
			i++
		}
		if i != len(s) {
			return 0, false
		}
	}
	return time.Date(y, time.Month(mo), d, h, mi, sec, 0, time.UTC).UnixMicro() + int64(us), true
}

// dateFormat is a DATE_FORMAT format compiled into literal runs and
// specifiers.
type dateFormat []fmtOp

type fmtOp struct {
	spec byte   // 0 for a literal
	lit  string // the literal
}

func compileDateFormat(f string) (dateFormat, error) {
	var ops dateFormat
	lit := 0
	for i := 0; i < len(f); i++ {
		if f[i] != '%' || i+1 == len(f) {
			continue
		}
		if i > lit {
			ops = append(ops, fmtOp{lit: f[lit:i]})
		}
		i++
		switch f[i] {
		case 'Y', 'y', 'm', 'c', 'd', 'e', 'H', 'k', 'h', 'I', 'l', 'i', 's', 'S', 'f', 'p', 'j', 'M', 'b', 'W', 'a', 'T', 'r', 'w':
			ops = append(ops, fmtOp{spec: f[i]})
		case '%':
			ops = append(ops, fmtOp{lit: "%"})
		default:
			return nil, fmt.Errorf("unsupported DATE_FORMAT specifier %%%c", f[i])
		}
		lit = i + 1
	}
	if lit < len(f) {
		ops = append(ops, fmtOp{lit: f[lit:]})
	}
	return ops, nil
}

func pad(b []byte, v, width int) []byte {
	if width == 2 && v < 10 {
		b = append(b, '0')
	}
	if width == 3 && v < 100 {
		b = append(b, '0')
		if v < 10 {
			b = append(b, '0')
		}
	}
	if width == 6 {
		for d := 100000; d > 1 && v < d; d /= 10 {
			b = append(b, '0')
		}
	}
	if width == 4 {
		for d := 1000; d > 1 && v < d; d /= 10 {
			b = append(b, '0')
		}
	}
	return strconv.AppendInt(b, int64(v), 10)
}

func (df dateFormat) append(b []byte, us int64) []byte {
	t := utc(us)
	for _, op := range df {
		if op.spec == 0 {
			b = append(b, op.lit...)
			continue
		}
		h12 := t.Hour() % 12
		if h12 == 0 {
			h12 = 12
		}
		switch op.spec {
		case 'Y':
			b = pad(b, t.Year(), 4)
		case 'y':
			b = pad(b, t.Year()%100, 2)
		case 'm':
			b = pad(b, int(t.Month()), 2)
		case 'c':
			b = pad(b, int(t.Month()), 1)
		case 'd':
			b = pad(b, t.Day(), 2)
		case 'e':
			b = pad(b, t.Day(), 1)
		case 'H':
			b = pad(b, t.Hour(), 2)
		case 'k':
			b = pad(b, t.Hour(), 1)
		case 'h', 'I':
			b = pad(b, h12, 2)
		case 'l':
			b = pad(b, h12, 1)
		case 'i':
			b = pad(b, t.Minute(), 2)
		case 's', 'S':
			b = pad(b, t.Second(), 2)
		case 'f':
			b = pad(b, int(floorMod(us, microsPerSecond)), 6)
		case 'p':
			if t.Hour() < 12 {
				b = append(b, "AM"...)
			} else {
				b = append(b, "PM"...)
			}
		case 'j':
			b = pad(b, t.YearDay(), 3)
		case 'M':
			b = append(b, t.Month().String()...)
		case 'b':
			b = append(b, t.Month().String()[:3]...)
		case 'W':
			b = append(b, t.Weekday().String()...)
		case 'a':
			b = append(b, t.Weekday().String()[:3]...)
		case 'w':
			b = pad(b, int(t.Weekday()), 1)
		case 'T':
			b = t.AppendFormat(b, "15:04:05")
		case 'r':
			b = t.AppendFormat(b, "03:04:05 PM")
		}
	}
	return b
}

func floorMod(a, b int64) int64 { return a - floorDiv(a, b)*b }

// monthsBetween is TIMESTAMPDIFF(MONTH, a, b): whole months from a to b.
func monthsBetween(a, b int64) int64 {
	neg := false
	if b < a {
		a, b, neg = b, a, true
	}
	ta, tb := utc(a), utc(b)
	m := int64(tb.Year()-ta.Year())*12 + int64(tb.Month()-ta.Month())
	// Not a whole month when b's day-and-time is before a's.
	restA := int64(ta.Day())*microsPerDay + floorMod(a, microsPerDay)
	restB := int64(tb.Day())*microsPerDay + floorMod(b, microsPerDay)
	if restB < restA {
		m--
	}
	if neg {
		return -m
	}
	return m
}
