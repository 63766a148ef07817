package sql

import (
	"encoding/binary"
	"errors"

	"github.com/sluicehq/sluice/engine"
)

// The repartition topic's records: one shuffle message each. The Kafka key
// is a partial's group key (empty for the other kinds); the value is (part
// of the format: never change it without a new version byte):
//
//	version    1 byte, shuffleVersion
//	kind       1 byte (ShuffleStart, ShufflePartial, ...)
//	producer   uvarint length + bytes: the source task, "<topic>/<partition>"
//	epoch      varint
//	from, to   varints: source offsets (Start, Commit and Idle: the offset in
//	           to; Start: the source's partition count in from, 0 if not said)
//	watermark  varint, unix microseconds (Progress)
//	rest       the partial's windows (Partial)
const shuffleVersion = 1

// AppendShuffleMessage appends the value of a shuffle message to b.
func AppendShuffleMessage(b []byte, kind byte, producer string, epoch, from, to, wm int64, value []byte) []byte {
	b = append(b, shuffleVersion, kind)
	b = binary.AppendUvarint(b, uint64(len(producer)))
	b = append(b, producer...)
	b = binary.AppendVarint(b, epoch)
	b = binary.AppendVarint(b, from)
	b = binary.AppendVarint(b, to)
	b = binary.AppendVarint(b, wm)
	return append(b, value...)
}

// DecodeShuffleMessage decodes a repartition record into a row of
// ShuffleSchema; its strings alias key and value.
func DecodeShuffleMessage(key, value []byte, row *engine.Row) error {
	v := value
	if len(v) < 2 || v[0] != shuffleVersion {
		return errors.New("sql: repartition record: unknown version")
	}
	row.SetInt(ShuffleKind, int64(v[1]))
	v = v[2:]
	n, k := binary.Uvarint(v)
	if k <= 0 || uint64(len(v)-k) < n {
		return errors.New("sql: repartition record: bad producer")
	}
	row.SetStr(ShuffleProducerName, engine.UnsafeString(v[k:k+int(n)]))
	v = v[k+int(n):]
	for _, slot := range [...]int{ShuffleEpoch, ShuffleFrom, ShuffleTo, ShuffleWatermark} {
		x, k := binary.Varint(v)
		if k <= 0 {
			return errors.New("sql: repartition record: bad number")
		}
		row.SetInt(slot, x)
		v = v[k:]
	}
	row.SetStr(ShuffleKey, engine.UnsafeString(key))
	row.SetStr(ShuffleValue, engine.UnsafeString(v))
	return nil
}
