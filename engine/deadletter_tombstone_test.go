package engine_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/sink/encode"
)

// TestDeadLetterTombstoneValueIsNull: a record with no value (a Kafka
// tombstone) is dead-lettered with value null, as its key is, not "".
func TestDeadLetterTombstoneValueIsNull(t *testing.T) {
	enc, err := encode.New(encode.FormatJSON, engine.DeadLetterSchema)
	if err != nil {
		t.Fatal(err)
	}
	row := engine.NewRow(engine.DeadLetterSchema.Width())
	for _, tc := range []struct {
		value []byte
		want  string
	}{{nil, `"value":null`}, {[]byte{}, `"value":""`}} {
		rec := &engine.Record{Offset: 7, Timestamp: time.UnixMilli(1), Value: tc.value}
		engine.FillDeadLetter(row, "p", "decode", "bad", engine.TaskID{Topic: "t"}, rec)
		out, err := enc.Append(nil, row)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(out), tc.want) || !strings.Contains(string(out), `"key":null`) {
			t.Errorf("value %v: dead letter %s, want %s", tc.value, out, tc.want)
		}
	}
}
