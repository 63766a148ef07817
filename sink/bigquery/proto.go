package bigquery

import (
	"fmt"
	"math/big"
	"strconv"
	"time"

	"cloud.google.com/go/bigquery/storage/managedwriter/adapt"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/sluicehq/sluice/engine"
)

// enc says how one value is written on the wire.
type enc uint8

const (
	encBool      enc = iota
	encInt           // int64 varint
	encDouble        // fixed64
	encString        // string or bytes: the slot's S as is
	encEnum          // the symbol, as a string
	encTimestamp     // int64 microseconds: N × mult
	encDate          // int32 days
	encTime          // string HH:MM:SS.ffffff
	encDateTime      // string YYYY-MM-DD HH:MM:SS.ffffff (local timestamps)
	encDecimal       // string: the unscaled two's-complement bytes with scale
	encRecord        // nested message
	encUnion         // nested message with one field per non-null branch
	encArray         // repeated
	encMap           // repeated message {key, value}
)

// field is the compiled encoding of one proto field.
type field struct {
	num  protowire.Number
	enc  enc
	off  int   // offset of the value's first slot from the enclosing record's own slot
	mult int64 // encTimestamp: microseconds per unit
	t    *engine.Type
	msg  *message // encRecord, encUnion, encMap (the entry)
	elem *field   // encArray, encMap: how one element (value) is written
	ew   int      // encArray, encMap: slots per element (value)
}

// message is the compiled encoding of a record (or a union, or a map entry).
type message struct {
	fields []field
}

// protoRow is a schema compiled into a proto2 descriptor and an encoder that
// appends a row's wire bytes straight from its slots.
type protoRow struct {
	desc *descriptorpb.DescriptorProto // self-contained (normalized) for AppendRows
	root *message
}

// compile derives the proto descriptor of schema, following BigQuery's
// conversion rules for the Storage Write API (proto2, one optional field per
// column; see doc.go for the type mapping).
func compile(schema *engine.Schema) (*protoRow, error) {
	b := &builder{}
	root := &descriptorpb.DescriptorProto{Name: new("Row")}
	msg, err := b.record(root, schema.Root)
	if err != nil {
		return nil, err
	}
	fdp := &descriptorpb.FileDescriptorProto{
		Name:        new("sluice_row.proto"),
		Package:     new("sluice"),
		Syntax:      new("proto2"),
		MessageType: []*descriptorpb.DescriptorProto{root},
	}
	fd, err := protodesc.NewFile(fdp, nil)
	if err != nil {
		return nil, fmt.Errorf("build descriptor: %w", err)
	}
	norm, err := adapt.NormalizeDescriptor(fd.Messages().Get(0))
	if err != nil {
		return nil, fmt.Errorf("normalize descriptor: %w", err)
	}
	return &protoRow{desc: norm, root: msg}, nil
}

type builder struct{ n int }

// nested adds a nested message type to parent and returns it and its name.
func (b *builder) nested(parent *descriptorpb.DescriptorProto) (*descriptorpb.DescriptorProto, string) {
	b.n++
	name := fmt.Sprintf("M%d", b.n)
	dp := &descriptorpb.DescriptorProto{Name: new(name)}
	parent.NestedType = append(parent.NestedType, dp)
	return dp, name
}

func (b *builder) record(dp *descriptorpb.DescriptorProto, t *engine.Type) (*message, error) {
	m := &message{}
	for i, f := range t.Fields {
		cf, err := b.field(dp, f.Name, int32(i+1), f.Type, f.Slot, false)
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", f.Name, err)
		}
		m.fields = append(m.fields, cf)
	}
	return m, nil
}

func (b *builder) field(dp *descriptorpb.DescriptorProto, name string, num int32, t *engine.Type, off int, repeated bool) (field, error) {
	if inner, ok := t.Nullable(); ok {
		t = inner
	}
	label := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL
	if repeated {
		label = descriptorpb.FieldDescriptorProto_LABEL_REPEATED
	}
	fdp := &descriptorpb.FieldDescriptorProto{Name: new(name), Number: new(num), Label: &label}
	dp.Field = append(dp.Field, fdp)
	f := field{num: protowire.Number(num), off: off, t: t}
	setType := func(pt descriptorpb.FieldDescriptorProto_Type) { fdp.Type = &pt }
	switch t.Kind {
	case engine.KindBool:
		f.enc = encBool
		setType(descriptorpb.FieldDescriptorProto_TYPE_BOOL)
	case engine.KindInt, engine.KindLong:
		switch {
		case t.Logical == engine.Date:
			f.enc = encDate
			setType(descriptorpb.FieldDescriptorProto_TYPE_INT32)
		case t.Logical == engine.TimestampMillis || t.Logical == engine.TimestampMicros:
			f.enc, f.mult = encTimestamp, t.Logical.MicrosPerUnit()
			setType(descriptorpb.FieldDescriptorProto_TYPE_INT64)
		case t.Logical == engine.LocalTimestampMillis || t.Logical == engine.LocalTimestampMicros:
			f.enc, f.mult = encDateTime, t.Logical.MicrosPerUnit()
			setType(descriptorpb.FieldDescriptorProto_TYPE_STRING)
		case t.Logical == engine.TimeMillis || t.Logical == engine.TimeMicros:
			f.enc, f.mult = encTime, t.Logical.MicrosPerUnit()
			setType(descriptorpb.FieldDescriptorProto_TYPE_STRING)
		default:
			f.enc = encInt
			setType(descriptorpb.FieldDescriptorProto_TYPE_INT64)
		}
	case engine.KindFloat, engine.KindDouble:
		f.enc = encDouble
		setType(descriptorpb.FieldDescriptorProto_TYPE_DOUBLE)
	case engine.KindString:
		f.enc = encString
		setType(descriptorpb.FieldDescriptorProto_TYPE_STRING)
	case engine.KindBytes, engine.KindFixed:
		if t.Logical == engine.Decimal {
			f.enc = encDecimal
			setType(descriptorpb.FieldDescriptorProto_TYPE_STRING)
			break
		}
		f.enc = encString
		setType(descriptorpb.FieldDescriptorProto_TYPE_BYTES)
	case engine.KindEnum:
		f.enc = encEnum
		setType(descriptorpb.FieldDescriptorProto_TYPE_STRING)
	case engine.KindRecord:
		sub, tn := b.nested(dp)
		m, err := b.record(sub, t)
		if err != nil {
			return f, err
		}
		f.enc, f.msg = encRecord, m
		setType(descriptorpb.FieldDescriptorProto_TYPE_MESSAGE)
		fdp.TypeName = new(tn)
	case engine.KindUnion:
		// A union other than [null, T] becomes a record with one optional
		// field per non-null branch, named after the branch's type, as
		// BigQuery's own Avro loader does.
		sub, tn := b.nested(dp)
		m := &message{}
		for i, br := range t.Branches {
			if br.Kind == engine.KindNull {
				m.fields = append(m.fields, field{}) // keeps indexes = branch numbers
				continue
			}
			bf, err := b.field(sub, branchName(br), int32(i+1), br, t.BranchSlot(i), false)
			if err != nil {
				return f, err
			}
			m.fields = append(m.fields, bf)
		}
		f.enc, f.msg = encUnion, m
		setType(descriptorpb.FieldDescriptorProto_TYPE_MESSAGE)
		fdp.TypeName = new(tn)
	case engine.KindArray:
		if repeated {
			return f, fmt.Errorf("an array of arrays has no BigQuery type")
		}
		// The element is encoded at offset 0 of its own slots in Row.Ext;
		// its descriptor is this same field, made repeated.
		dp.Field = dp.Field[:len(dp.Field)-1]
		ef, err := b.field(dp, name, num, t.Items, 0, true)
		if err != nil {
			return f, err
		}
		f.enc, f.elem, f.ew = encArray, &ef, t.Items.Width()
		return f, nil
	case engine.KindMap:
		// BigQuery has no map: a repeated STRUCT<key STRING, value T>.
		sub, tn := b.nested(dp)
		kf := &descriptorpb.FieldDescriptorProto{Name: new("key"), Number: new(int32(1)),
			Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(), Type: descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()}
		sub.Field = append(sub.Field, kf)
		vf, err := b.field(sub, "value", 2, t.Items, 1, false)
		if err != nil {
			return f, err
		}
		if vf.enc == encArray {
			return f, fmt.Errorf("a map of arrays has no BigQuery type")
		}
		f.enc, f.elem, f.ew = encMap, &vf, t.Items.Width()
		fdp.Label = descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
		setType(descriptorpb.FieldDescriptorProto_TYPE_MESSAGE)
		fdp.TypeName = new(tn)
	default:
		return f, fmt.Errorf("type %s has no BigQuery type", t.Kind)
	}
	return f, nil
}

func branchName(t *engine.Type) string {
	if t.Name != "" {
		n := t.Name
		for i := len(n) - 1; i >= 0; i-- {
			if n[i] == '.' {
				return n[i+1:]
			}
		}
		return n
	}
	return t.Kind.String()
}

// appendRow appends the wire bytes of row to b.
func (p *protoRow) appendRow(b []byte, row *engine.Row) []byte {
	return appendFields(b, p.root, row.Slots, -1, row)
}

// appendFields writes the fields of record m whose own slot is slots[base].
func appendFields(b []byte, m *message, slots []engine.Slot, base int, row *engine.Row) []byte {
	for i := range m.fields {
		f := &m.fields[i]
		if f.num == 0 {
			continue
		}
		b = appendField(b, f, slots, base+f.off, row)
	}
	return b
}

// appendField writes field f whose value starts at slots[i]; a null value is
// an absent field.
func appendField(b []byte, f *field, slots []engine.Slot, i int, row *engine.Row) []byte {
	s := &slots[i]
	if s.Null {
		return b
	}
	switch f.enc {
	case encArray:
		elems := row.ElemSlots(s, f.ew)
		for j := 0; j < len(elems); j += f.ew {
			// BigQuery arrays cannot hold NULL: a null element is left out.
			b = appendField(b, f.elem, elems, j, row)
		}
		return b
	case encMap:
		entries := row.ElemSlots(s, f.ew+1)
		for j := 0; j < len(entries); j += f.ew + 1 {
			b = protowire.AppendTag(b, f.num, protowire.BytesType)
			mark := len(b)
			b = append(b, 0)
			b = protowire.AppendTag(b, 1, protowire.BytesType)
			b = protowire.AppendString(b, entries[j].S)
			b = appendField(b, f.elem, entries, j+1, row)
			b = endLen(b, mark)
		}
		return b
	}
	return appendValue(b, f, slots, i, row)
}

func appendValue(b []byte, f *field, slots []engine.Slot, i int, row *engine.Row) []byte {
	s := &slots[i]
	if s.Null {
		return b
	}
	switch f.enc {
	case encBool, encInt:
		b = protowire.AppendTag(b, f.num, protowire.VarintType)
		return protowire.AppendVarint(b, s.N)
	case encDate:
		b = protowire.AppendTag(b, f.num, protowire.VarintType)
		return protowire.AppendVarint(b, uint64(int64(int32(s.N))))
	case encTimestamp:
		b = protowire.AppendTag(b, f.num, protowire.VarintType)
		return protowire.AppendVarint(b, uint64(int64(s.N)*f.mult))
	case encDouble:
		b = protowire.AppendTag(b, f.num, protowire.Fixed64Type)
		return protowire.AppendFixed64(b, s.N)
	case encString, encEnum:
		b = protowire.AppendTag(b, f.num, protowire.BytesType)
		return protowire.AppendString(b, s.S)
	}
	if f.enc == encUnion && (int(s.N) >= len(f.msg.fields) || f.msg.fields[s.N].num == 0) {
		return b // the null branch
	}
	b = protowire.AppendTag(b, f.num, protowire.BytesType)
	mark := len(b)
	b = append(b, 0)
	switch f.enc {
	case encTime:
		us := int64(s.N) * f.mult
		b = time.UnixMicro(us).UTC().AppendFormat(b, "15:04:05.000000")
	case encDateTime:
		us := int64(s.N) * f.mult
		b = time.UnixMicro(us).UTC().AppendFormat(b, "2006-01-02 15:04:05.000000")
	case encDecimal:
		b = appendDecimal(b, engine.UnsafeBytes(s.S), f.t.Scale)
	case encRecord:
		b = appendFields(b, f.msg, slots, i, row)
	case encUnion:
		bf := &f.msg.fields[s.N]
		b = appendField(b, bf, slots, i+bf.off, row)
	}
	return endLen(b, mark)
}

// endLen turns the one byte reserved at b[mark] into the varint length of
// what follows it, moving the content when the length needs more bytes.
func endLen(b []byte, mark int) []byte {
	n := len(b) - mark - 1
	k := protowire.SizeVarint(uint64(n))
	if k == 1 {
		b[mark] = byte(n)
		return b
	}
	var tmp [10]byte // no escape: fixed size
	v := protowire.AppendVarint(tmp[:0], uint64(n))
	b = append(b, tmp[:k-1]...)
	copy(b[mark+k:], b[mark+1:mark+1+n])
	copy(b[mark:], v)
	return b
}

// appendDecimal writes the unscaled big-endian two's-complement integer u
// with scale as a decimal string, the form BigQuery parses into NUMERIC and
// BIGNUMERIC.
func appendDecimal(b []byte, u []byte, scale int) []byte {
	var digits []byte
	neg := false
	if len(u) <= 8 {
		var v int64
		if len(u) > 0 && u[0]&0x80 != 0 {
			v = -1
		}
		for _, c := range u {
			v = v<<8 | int64(c)
		}
		if v < 0 {
			neg = true
			var tmp [24]byte
			digits = strconv.AppendUint(tmp[:0], uint64(-v), 10)
		} else {
			var tmp [24]byte
			digits = strconv.AppendUint(tmp[:0], uint64(v), 10)
		}
	} else {
		n := new(big.Int).SetBytes(u)
		if u[0]&0x80 != 0 {
			n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(u))))
		}
		neg = n.Sign() < 0
		digits = n.Abs(n).Append(nil, 10)
	}
	if neg {
		b = append(b, '-')
	}
	if scale <= 0 {
		return append(b, digits...)
	}
	if len(digits) <= scale {
		b = append(b, '0', '.')
		for range scale - len(digits) {
			b = append(b, '0')
		}
		return append(b, digits...)
	}
	p := len(digits) - scale
	b = append(b, digits[:p]...)
	b = append(b, '.')
	return append(b, digits[p:]...)
}
