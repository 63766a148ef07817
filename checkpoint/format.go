package checkpoint

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"slices"

	"github.com/sluicehq/sluice/engine"
)

// The constants below are part of the format, never change them. A change to
// the layout is a new formatVersion, and Decode keeps reading the old ones.
const (
	// magic opens every checkpoint object: "SLCP".
	magic = "SLCP"
	// formatVersion is the version Encode writes; Decode also reads
	// formatVersion1.
	formatVersion  = 2
	formatVersion1 = 1
	// headerSize is magic (4) + version (1) + flags (1) + length (4).
	headerSize = 10
	// trailerSize is the CRC-32C that closes the object.
	trailerSize = 4
	// offLength is where the little-endian uint32 total length sits.
	offLength = 6

	// Bits of a task's lead uvarint, below the partition delta.
	taskHasState    = 1 << 0 // a State string follows the watermark
	taskNoWatermark = 1 << 1 // the watermark is 0 (unknown) and is not written
	taskAhead       = 1 << 2 // version 2: pipelines ahead of the offset follow
	taskFlagBits1   = 2      // flag bits of a version 1 lead
	taskFlagBits    = 3      // flag bits of a version 2 lead
	// Header flags.
	headerSinkStates = 1 << 0 // a sink-state section follows the task groups
	headerPipelines  = 1 << 1 // version 2: a pipeline-name table follows the time
	knownHeaderFlags = headerSinkStates | headerPipelines
)

// castagnoli returns the CRC-32C table, which the crc32 package builds once and
// caches (and checksums with SSE 4.2 or ARM64 CRC instructions).
func castagnoli() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) }

// ErrCorrupt marks a checkpoint object that is damaged, truncated or not a
// checkpoint at all. Test for it with errors.Is; the error is a *CorruptError
// that says where.
var ErrCorrupt = errors.New("checkpoint corrupt")

// CorruptError says why and where an object failed to decode. It wraps
// ErrCorrupt.
type CorruptError struct {
	Key    string // the object's key, when known
	Offset int    // byte offset of the field that failed
	Field  string // the field being read
	Reason string
}

func (e *CorruptError) Error() string {
	if e.Key != "" {
		return fmt.Sprintf("checkpoint corrupt: %s: %s at byte %d: %s", e.Key, e.Field, e.Offset, e.Reason)
	}
	return fmt.Sprintf("checkpoint corrupt: %s at byte %d: %s", e.Field, e.Offset, e.Reason)
}

func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// Encode returns the encoded form of cp described in the package
// documentation. Tasks are written grouped by topic, in (topic, partition)
// order, so the same checkpoint always yields the same bytes; cp is not
// modified. Encode panics only if the result would exceed 4 GiB, which a
// checkpoint of offsets and state references cannot reach.
func Encode(cp *engine.Checkpoint) []byte {
	tasks := slices.Clone(cp.Tasks)
	slices.SortStableFunc(tasks, func(a, b engine.TaskState) int {
		return cmp.Or(cmp.Compare(a.Task.Topic, b.Task.Topic), cmp.Compare(a.Task.Partition, b.Task.Partition))
	})

	// A stateless task costs about 9 bytes (see doc.go); 12 per task leaves
	// room so that the buffer is not regrown.
	b := newFrame(magic, 64+len(cp.Job)+len(cp.Pod)+len(tasks)*12)
	b = appendString(b, cp.Job)
	b = appendString(b, cp.Pod)
	b = binary.AppendUvarint(b, cp.Seq)
	b = binary.AppendVarint(b, cp.Time)
	names := pipelineTable(tasks)
	if len(names) > 0 {
		b[5] |= headerPipelines
		b = binary.AppendUvarint(b, uint64(len(names)))
		for _, n := range names {
			b = appendString(b, n)
		}
	}

	ngroups := 0
	for i := range tasks {
		if i == 0 || tasks[i].Task.Topic != tasks[i-1].Task.Topic {
			ngroups++
		}
	}
	b = binary.AppendUvarint(b, uint64(ngroups))
	for i := 0; i < len(tasks); {
		j := i + 1
		for j < len(tasks) && tasks[j].Task.Topic == tasks[i].Task.Topic {
			j++
		}
		b = appendString(b, tasks[i].Task.Topic)
		b = binary.AppendUvarint(b, uint64(j-i))
		prev := int64(0)
		for _, t := range tasks[i:j] {
			b = appendTask(b, cp.Time, prev, t, names)
			prev = int64(t.Task.Partition)
		}
		i = j
	}
	b = appendSinkStates(b, tasks)
	return sealFrame(b)
}

// appendSinkStates appends the sink-state section and sets its header flag
// when any task has sink state; a checkpoint without any is unchanged.
func appendSinkStates(b []byte, tasks []engine.TaskState) []byte {
	n := 0
	for _, t := range tasks {
		n += len(t.Sinks)
	}
	if n == 0 {
		return b
	}
	b[5] |= headerSinkStates
	b = binary.AppendUvarint(b, uint64(n))
	for i, t := range tasks {
		for _, s := range t.Sinks {
			b = binary.AppendUvarint(b, uint64(i))
			b = appendString(b, s.Name)
			b = appendString(b, string(s.Data))
		}
	}
	return b
}

// newFrame starts an object of the given magic: the header, with the length
// left for sealFrame, and room for size more bytes.
func newFrame(magic string, size int) []byte {
	b := make([]byte, headerSize, headerSize+size+trailerSize)
	copy(b, magic)
	b[4] = formatVersion
	b[5] = 0 // flags
	return b
}

// sealFrame sets the length of an object started by newFrame and appends
// its checksum.
func sealFrame(b []byte) []byte {
	n := len(b) + trailerSize
	if n > math.MaxUint32 {
		panic("checkpoint: encoded object exceeds 4 GiB")
	}
	binary.LittleEndian.PutUint32(b[offLength:], uint32(n))
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli()))
}

// pipelineTable returns the sorted names of the pipelines that are ahead of
// their task's offset anywhere in tasks; usually none.
func pipelineTable(tasks []engine.TaskState) []string {
	var names []string
	for _, t := range tasks {
		for _, p := range t.Pipelines {
			names = append(names, p.Pipeline)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

func appendTask(b []byte, now, prevPartition int64, t engine.TaskState, names []string) []byte {
	// The partition delta is zigzag-coded so that any int32 sequence
	// encodes; in practice it is 0 or 1 and the lead is one byte.
	lead := zigzag(int64(t.Task.Partition)-prevPartition) << taskFlagBits
	if t.State != "" {
		lead |= taskHasState
	}
	if t.Watermark == 0 {
		lead |= taskNoWatermark
	}
	ahead := 0
	for _, p := range t.Pipelines {
		if p.Offset > t.Offset {
			ahead++
		}
	}
	if ahead > 0 {
		lead |= taskAhead
	}
	b = binary.AppendUvarint(b, lead)
	b = binary.AppendVarint(b, t.Offset)
	if t.Watermark != 0 {
		// Watermarks trail the checkpoint time by about the pipeline's
		// latency: a few bytes instead of eight. Wrapping arithmetic keeps
		// this a bijection on int64.
		b = binary.AppendVarint(b, now-t.Watermark)
	}
	if t.State != "" {
		b = appendString(b, t.State)
	}
	if ahead > 0 {
		b = binary.AppendUvarint(b, uint64(ahead))
		for _, p := range t.Pipelines {
			if p.Offset > t.Offset {
				i, _ := slices.BinarySearch(names, p.Pipeline)
				b = binary.AppendUvarint(b, uint64(i))
				b = binary.AppendUvarint(b, uint64(p.Offset-t.Offset))
			}
		}
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// openFrame checks the envelope of an object — size, magic, length,
// checksum, version, flags, in that order — and returns a decoder over its
// body.
func openFrame(data []byte, magic string) (*decoder, error) {
	fail := func(off int, field, format string, args ...any) (*decoder, error) {
		return nil, &CorruptError{Offset: off, Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if len(data) < headerSize+trailerSize {
		return fail(0, "header", "object is %d bytes, shorter than the %d bytes of an empty object", len(data), headerSize+trailerSize)
	}
	if string(data[:4]) != magic {
		return fail(0, "magic", "got %q, want %q", data[:4], magic)
	}
	if n := binary.LittleEndian.Uint32(data[offLength:]); uint64(n) != uint64(len(data)) {
		if uint64(n) > uint64(len(data)) {
			return fail(offLength, "length", "truncated: header says %d bytes, object has %d", n, len(data))
		}
		return fail(offLength, "length", "header says %d bytes, object has %d", n, len(data))
	}
	end := len(data) - trailerSize
	if got, want := crc32.Checksum(data[:end], castagnoli()), binary.LittleEndian.Uint32(data[end:]); got != want {
		return fail(end, "checksum", "computed %#08x, stored %#08x", got, want)
	}
	known := byte(knownHeaderFlags)
	switch data[4] {
	case formatVersion:
	case formatVersion1:
		known = headerSinkStates
	default:
		return fail(4, "version", "format version %d is not known to this reader (it reads %d and %d)", data[4], formatVersion1, formatVersion)
	}
	if f := data[5]; f&^known != 0 {
		return fail(5, "flags", "unknown flags %#02x", f)
	}
	return &decoder{b: data[:end], off: headerSize}, nil
}

// finish reports unread bytes, or the first failure.
func (d *decoder) finish() error {
	if d.err == nil && d.off != len(d.b) {
		d.fail(d.off, "end", "%d unread bytes before the checksum", len(d.b)-d.off)
	}
	if d.err != nil {
		return d.err
	}
	return nil
}

func zigzag(v int64) uint64   { return uint64(v<<1) ^ uint64(v>>63) }
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// Decode verifies and decodes an object written by Encode. Any damage —
// wrong magic, a length that does not match (truncation or trailing bytes), a
// checksum mismatch, an unknown version or flag, a field that runs past the
// end — yields a *CorruptError wrapping ErrCorrupt and no checkpoint: the
// checksum is verified before a single field is decoded. Tasks come back in
// (topic, partition) order. data is not retained.
func Decode(data []byte) (*engine.Checkpoint, error) {
	d, err := openFrame(data, magic)
	if err != nil {
		return nil, err
	}
	cp := &engine.Checkpoint{}
	cp.Job = d.string("job")
	cp.Pod = d.string("pod")
	cp.Seq = d.uvarint("seq")
	cp.Time = d.varint("time")
	flagBits := uint(taskFlagBits)
	if data[4] == formatVersion1 {
		flagBits = taskFlagBits1
	}
	var names []string
	if data[5]&headerPipelines != 0 {
		n := d.count("pipeline count", 1)
		for range n {
			names = append(names, d.string("pipeline"))
		}
	}
	ngroups := d.count("topic count", 2) // a group is at least a name length and a task count
	for range ngroups {
		if d.err != nil {
			break
		}
		topic := d.string("topic")
		ntasks := d.count("task count", 2) // a task is at least a lead and an offset
		if cp.Tasks == nil && d.err == nil {
			// Guess from the first group, bounded by what the bytes left
			// can hold so that a damaged count cannot inflate it.
			cp.Tasks = make([]engine.TaskState, 0, min(ntasks*ngroups, (len(d.b)-d.off)/2))
		}
		partition := int64(0)
		for range ntasks {
			start := d.off
			lead := d.uvarint("task")
			partition += unzigzag(lead >> flagBits)
			if d.err == nil && (partition < math.MinInt32 || partition > math.MaxInt32) {
				d.fail(start, "partition", "partition %d out of range", partition)
			}
			t := engine.TaskState{Task: engine.TaskID{Topic: topic, Partition: int32(partition)}}
			t.Offset = d.varint("offset")
			if lead&taskNoWatermark == 0 {
				t.Watermark = cp.Time - d.varint("watermark")
			}
			if lead&taskHasState != 0 {
				t.State = d.string("state")
			}
			if flagBits == taskFlagBits && lead&taskAhead != 0 {
				n := d.count("pipelines ahead", 2) // an index and an offset delta
				for range n {
					at := d.off
					i := d.uvarint("pipeline index")
					delta := d.uvarint("pipeline offset")
					if d.err != nil {
						break
					}
					if i >= uint64(len(names)) || delta == 0 || delta > math.MaxInt64-uint64(max(t.Offset, 0)) {
						d.fail(at, "pipeline", "pipeline %d of %d at offset +%d", i, len(names), delta)
						break
					}
					t.Pipelines = append(t.Pipelines, engine.PipelineOffset{Pipeline: names[i], Offset: t.Offset + int64(delta)})
				}
			}
			if d.err != nil {
				break
			}
			cp.Tasks = append(cp.Tasks, t)
		}
	}
	if data[5]&headerSinkStates != 0 {
		n := d.count("sink state count", 3) // index, name length, data length
		for range n {
			start := d.off
			i := d.uvarint("sink state task")
			name := d.string("sink state name")
			st := d.string("sink state data")
			if d.err != nil {
				break
			}
			if i >= uint64(len(cp.Tasks)) {
				d.fail(start, "sink state task", "task %d of %d", i, len(cp.Tasks))
				break
			}
			cp.Tasks[i].Sinks = append(cp.Tasks[i].Sinks, engine.SinkState{Name: name, Data: []byte(st)})
		}
	}
	if err := d.finish(); err != nil {
		return nil, err
	}
	return cp, nil
}

// decoder reads fields of a checksummed body; the first failure sticks and
// every later read returns a zero value.
type decoder struct {
	b   []byte
	off int
	err *CorruptError
}

func (d *decoder) fail(off int, field, format string, args ...any) {
	if d.err == nil {
		d.err = &CorruptError{Offset: off, Field: field, Reason: fmt.Sprintf(format, args...)}
	}
}

func (d *decoder) uvarint(field string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail(d.off, field, "bad or truncated varint")
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) varint(field string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		d.fail(d.off, field, "bad or truncated varint")
		return 0
	}
	d.off += n
	return v
}

// count reads a element count and rejects one that could not fit in the
// remaining bytes at minSize bytes per element, so a damaged count never
// drives a large allocation.
func (d *decoder) count(field string, minSize int) int {
	start := d.off
	v := d.uvarint(field)
	if d.err == nil && v > uint64((len(d.b)-d.off)/minSize) {
		d.fail(start, field, "%d elements cannot fit in the %d bytes left", v, len(d.b)-d.off)
		return 0
	}
	return int(v)
}

func (d *decoder) string(field string) string {
	start := d.off
	n := d.uvarint(field)
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)-d.off) {
		d.fail(start, field, "length %d runs past the end", n)
		return ""
	}
	s := string(d.b[d.off : d.off+int(n)])
	d.off += int(n)
	return s
}
