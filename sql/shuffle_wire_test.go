package sql_test

import (
	"testing"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/sql"
)

// FuzzShuffleMessage: any repartition record decodes or fails without a
// panic, and what AppendShuffleMessage writes decodes to the same fields.
func FuzzShuffleMessage(f *testing.F) {
	f.Add([]byte("k"), byte(sql.ShufflePartial), "in/3", int64(7), int64(10), int64(20), int64(-5), []byte("windows"))
	f.Add([]byte(nil), byte(sql.ShuffleCommit), "", int64(-1), int64(0), int64(1<<40), int64(0), []byte(nil))
	f.Fuzz(func(t *testing.T, key []byte, kind byte, producer string, epoch, from, to, wm int64, value []byte) {
		row := engine.NewRow(sql.ShuffleSchema.Width())
		_ = sql.DecodeShuffleMessage(key, value, row)
		v := sql.AppendShuffleMessage(nil, kind, producer, epoch, from, to, wm, value)
		row.Reset(sql.ShuffleSchema.Width())
		if err := sql.DecodeShuffleMessage(key, v, row); err != nil {
			t.Fatalf("decode what AppendShuffleMessage wrote: %v", err)
		}
		if row.Int(sql.ShuffleKind) != int64(kind) || row.Str(sql.ShuffleProducerName) != producer || row.Int(sql.ShuffleEpoch) != epoch ||
			row.Int(sql.ShuffleFrom) != from || row.Int(sql.ShuffleTo) != to || row.Int(sql.ShuffleWatermark) != wm ||
			row.Str(sql.ShuffleKey) != string(key) || row.Str(sql.ShuffleValue) != string(value) {
			t.Fatalf("round trip changed the record: %v", row.Slots)
		}
	})
}
