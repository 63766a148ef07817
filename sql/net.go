package sql

import (
	"net/netip"
	"strconv"

	"github.com/sluicehq/sluice/engine"
)

// inetAton is MySQL's INET_ATON for dotted quads: NULL for anything else.
func inetAton(s string) (int64, bool) {
	var v, part int64
	parts, digits := 0, 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if digits == 0 || part > 255 {
				return 0, false
			}
			v = v<<8 | part
			part, digits = 0, 0
			parts++
			continue
		}
		if s[i] < '0' || s[i] > '9' || digits == 3 {
			return 0, false
		}
		part = part*10 + int64(s[i]-'0')
		digits++
	}
	if parts != 4 {
		return 0, false
	}
	return v, true
}

func planInetNtoa(c *compiler, pos int, a []*expr) (*expr, error) {
	return c.fold(&expr{t: tString, nullable: true, konst: a[0].konst, s: func(in, out *engine.Row) (string, bool, error) {
		v, ok, err := asInt(a[0])(in, out)
		if !ok || v < 0 || v > 0xffffffff {
			return "", false, err
		}
		start := len(out.Arena)
		for i := 3; i >= 0; i-- {
			out.Arena = strconv.AppendInt(out.Arena, v>>(8*i)&0xff, 10)
			if i > 0 {
				out.Arena = append(out.Arena, '.')
			}
		}
		return engine.UnsafeString(out.Arena[start:]), true, nil
	}}), nil
}

// parseIP reads an address as text, or as the 4 or 16 bytes INET6_ATON
// returns. netip.ParseAddr does not allocate for addresses without a zone.
func parseIP(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	switch len(s) {
	case 4:
		return netip.AddrFrom4([4]byte{s[0], s[1], s[2], s[3]}), true
	case 16:
		var b [16]byte
		copy(b[:], s)
		return netip.AddrFrom16(b).Unmap(), true
	}
	return netip.Addr{}, false
}

func isIPv4(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is4()
}

func isIPv6(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is6()
}

func planInet6Aton(c *compiler, pos int, a []*expr) (*expr, error) {
	f := asString(a[0])
	return c.fold(&expr{t: tString, nullable: true, konst: a[0].konst, s: func(in, out *engine.Row) (string, bool, error) {
		s, ok, err := f(in, out)
		if !ok {
			return "", false, err
		}
		ip, perr := netip.ParseAddr(s)
		if perr != nil || ip.Zone() != "" {
			return "", false, nil
		}
		start := len(out.Arena)
		out.Arena = append(out.Arena, ip.AsSlice()...)
		return engine.UnsafeString(out.Arena[start:]), true, nil
	}}), nil
}

func planInet6Ntoa(c *compiler, pos int, a []*expr) (*expr, error) {
	f := asString(a[0])
	return c.fold(&expr{t: tString, nullable: true, konst: a[0].konst, s: func(in, out *engine.Row) (string, bool, error) {
		s, ok, err := f(in, out)
		if !ok || (len(s) != 4 && len(s) != 16) {
			return "", false, err
		}
		ip, _ := netip.AddrFromSlice(engine.UnsafeBytes(s))
		start := len(out.Arena)
		out.Arena = ip.AppendTo(out.Arena)
		return engine.UnsafeString(out.Arena[start:]), true, nil
	}}), nil
}

// planCIDRMatch is CIDR_MATCH(ip, cidr, ...): true when ip (text, or the
// bytes of INET6_ATON, or the number of INET_ATON) is in any of the CIDRs.
// Constant CIDRs are parsed once; an IPv4-mapped IPv6 address matches IPv4
// prefixes. An unparsable ip or CIDR gives NULL.
func planCIDRMatch(c *compiler, pos int, a []*expr) (*expr, error) {
	var ipf func(in, out *engine.Row) (netip.Addr, bool, error)
	switch a[0].t {
	case tInt:
		f := a[0].i
		ipf = func(in, out *engine.Row) (netip.Addr, bool, error) {
			v, ok, err := f(in, out)
			if !ok || v < 0 || v > 0xffffffff {
				return netip.Addr{}, false, err
			}
			return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true, nil
		}
	case tString, tNull:
		f := asString(a[0])
		ipf = func(in, out *engine.Row) (netip.Addr, bool, error) {
			s, ok, err := f(in, out)
			if !ok {
				return netip.Addr{}, false, err
			}
			ip, ok := parseIP(s)
			return ip, ok, nil
		}
	default:
		return nil, c.errorf(a[0].pos, "CIDR_MATCH needs an IP address string or number, not %s", a[0].t)
	}
	allConst := true
	var prefixes []netip.Prefix
	for _, e := range a[1:] {
		if !e.konst || e.t != tString {
			allConst = false
			break
		}
		p, err := netip.ParsePrefix(e.cv.s)
		if err != nil {
			return nil, c.errorf(e.pos, "bad CIDR %q: want e.g. '10.0.0.0/8' or '2001:db8::/32'", e.cv.s)
		}
		prefixes = append(prefixes, p.Masked())
	}
	r := &expr{t: tBool, nullable: true, konst: konst(a)}
	if allConst {
		r.nullable = a[0].nullable || a[0].t != tInt
		r.b = func(in, out *engine.Row) (bool, bool, error) {
			ip, ok, err := ipf(in, out)
			if !ok {
				return false, false, err
			}
			for _, p := range prefixes {
				if p.Contains(ip) {
					return true, true, nil
				}
			}
			return false, true, nil
		}
		return c.fold(r), nil
	}
	cf := make([]fn[string], len(a)-1)
	for i, e := range a[1:] {
		cf[i] = asString(e)
	}
	r.b = func(in, out *engine.Row) (bool, bool, error) {
		ip, ok, err := ipf(in, out)
		if !ok {
			return false, false, err
		}
		for _, f := range cf {
			s, ok, err := f(in, out)
			if !ok {
				return false, false, err
			}
			p, perr := netip.ParsePrefix(s)
			if perr != nil {
				return false, false, nil
			}
			if p.Masked().Contains(ip) {
				return true, true, nil
			}
		}
		return false, true, nil
	}
	return c.fold(r), nil
}
