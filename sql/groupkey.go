package sql

import (
	"encoding/binary"
	"errors"

	"github.com/sluicehq/sluice/engine"
)

// A group key is the concatenation of its slots' encodings, each by the
// slot's type (keyCode), behind a tag byte:
//
//	keyNull     (1)  a NULL
//	keyCompact  (0)  string, bytes, fixed: uvarint len, the bytes
//	                 enum: uvarint ordinal (the symbol comes from the type)
//	                 other: N, 8 bytes little-endian
//	keyGeneric  (2)  N, 8 bytes little-endian, uvarint len(S), S — any
//	                 slot the compact form cannot carry (an enum symbol not
//	                 at its ordinal in the type, a string with N set)
//
// The key is the group's identity in memory and in the task's state, and
// the key of its partials on the repartition topic.
const (
	keyCompact = 0
	keyNull    = 1
	keyGeneric = 2
)

// keyCode is how a key slot of one type is encoded compactly.
type keyCode struct {
	kind    uint8 // codeBytes, codeEnum, codeNumber
	symbols []string
}

const (
	codeNumber uint8 = iota
	codeBytes
	codeEnum
	codeOther // neither: always keyGeneric
)

func keyCodeOf(t *engine.Type) keyCode {
	switch t.Kind {
	case engine.KindString, engine.KindBytes, engine.KindFixed:
		return keyCode{kind: codeBytes}
	case engine.KindEnum:
		return keyCode{kind: codeEnum, symbols: t.Symbols}
	case engine.KindNull, engine.KindBool, engine.KindInt, engine.KindLong, engine.KindFloat, engine.KindDouble:
		return keyCode{kind: codeNumber}
	}
	return keyCode{kind: codeOther}
}

// appendKeySlot appends the encoding of key slot v of code c.
func appendKeySlot(b []byte, c keyCode, v *engine.Slot) []byte {
	if v.Null {
		return append(b, keyNull)
	}
	switch c.kind {
	case codeBytes:
		if v.N == 0 {
			b = binary.AppendUvarint(append(b, keyCompact), uint64(len(v.S)))
			return append(b, v.S...)
		}
	case codeEnum:
		if v.N < uint64(len(c.symbols)) && c.symbols[v.N] == v.S {
			return binary.AppendUvarint(append(b, keyCompact), v.N)
		}
	case codeNumber:
		if v.S == "" {
			return binary.LittleEndian.AppendUint64(append(b, keyCompact), v.N)
		}
	}
	b = binary.LittleEndian.AppendUint64(append(b, keyGeneric), v.N)
	b = binary.AppendUvarint(b, uint64(len(v.S)))
	return append(b, v.S...)
}

var errKey = errors.New("truncated or corrupt group key")

// keySlotIn decodes the first key slot of k, of code c; a string value is
// a substring of k, not a copy.
func keySlotIn(k string, c keyCode) (engine.Slot, string, error) {
	if len(k) == 0 {
		return engine.Slot{}, "", errKey
	}
	tag, k := k[0], k[1:]
	switch {
	case tag == keyNull:
		return engine.Slot{Null: true}, k, nil
	case tag == keyCompact && c.kind == codeBytes:
		n, k, ok := uvarintIn(k)
		if !ok || uint64(len(k)) < n {
			return engine.Slot{}, "", errKey
		}
		return engine.Slot{S: k[:n]}, k[n:], nil
	case tag == keyCompact && c.kind == codeEnum:
		n, k, ok := uvarintIn(k)
		if !ok || n >= uint64(len(c.symbols)) {
			return engine.Slot{}, "", errKey
		}
		return engine.Slot{N: n, S: c.symbols[n]}, k, nil
	case tag == keyCompact && c.kind == codeNumber:
		if len(k) < 8 {
			return engine.Slot{}, "", errKey
		}
		return engine.Slot{N: u64In(k)}, k[8:], nil
	case tag == keyGeneric:
		if len(k) < 8 {
			return engine.Slot{}, "", errKey
		}
		v := engine.Slot{N: u64In(k)}
		n, k, ok := uvarintIn(k[8:])
		if !ok || uint64(len(k)) < n {
			return engine.Slot{}, "", errKey
		}
		v.S = k[:n]
		return v, k[n:], nil
	}
	return engine.Slot{}, "", errKey
}

func u64In(k string) uint64 {
	_ = k[7]
	return uint64(k[0]) | uint64(k[1])<<8 | uint64(k[2])<<16 | uint64(k[3])<<24 |
		uint64(k[4])<<32 | uint64(k[5])<<40 | uint64(k[6])<<48 | uint64(k[7])<<56
}

func uvarintIn(k string) (uint64, string, bool) {
	var n uint64
	for i, shift := 0, 0; i < len(k) && shift <= 63; i, shift = i+1, shift+7 {
		c := k[i]
		n |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return n, k[i+1:], true
		}
	}
	return 0, "", false
}

// checkKey checks that key is the encoding of a's group key.
func (a *Aggregation) checkKey(key string) error {
	for _, c := range a.keyCodes {
		var err error
		if _, key, err = keySlotIn(key, c); err != nil {
			return err
		}
	}
	if len(key) != 0 {
		return errors.New("trailing bytes")
	}
	return nil
}
