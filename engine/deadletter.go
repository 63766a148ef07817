package engine

// DeadLetterSchema is the schema of the rows sent to a pipeline's dead-letter
// destination: the raw record, where it came from, and why it failed. Any sink
// can be a dead-letter destination, because a dead letter is a row like any
// other. Column slots are the DL* constants.
var DeadLetterSchema = MustSchema(&Type{Kind: KindRecord, Name: "sluice.DeadLetter", Fields: []Field{
	{Name: "pipeline", Type: &Type{Kind: KindString}},
	{Name: "stage", Type: &Type{Kind: KindString}}, // decode, sql or sink
	{Name: "error", Type: &Type{Kind: KindString}},
	{Name: "topic", Type: &Type{Kind: KindString}},
	{Name: "partition", Type: &Type{Kind: KindInt}},
	{Name: "offset", Type: &Type{Kind: KindLong}},
	{Name: "timestamp", Type: &Type{Kind: KindLong, Logical: TimestampMicros}},
	{Name: "key", Type: &Type{Kind: KindUnion, Branches: []*Type{{Kind: KindNull}, {Kind: KindBytes}}}},
	{Name: "value", Type: &Type{Kind: KindUnion, Branches: []*Type{{Kind: KindNull}, {Kind: KindBytes}}}}, // null: a tombstone
}})

// Slots of DeadLetterSchema.
const (
	DLPipeline = iota
	DLStage
	DLError
	DLTopic
	DLPartition
	DLOffset
	DLTimestamp
	DLKey
	DLValue
)

// FillDeadLetter writes a dead letter for rec into row. reason is the error's
// text, already redacted (Job.Redact) by the caller.
func FillDeadLetter(row *Row, pipeline, stage, reason string, task TaskID, rec *Record) {
	row.Reset(DeadLetterSchema.Width())
	row.SetStr(DLPipeline, pipeline)
	row.SetStr(DLStage, stage)
	row.SetStr(DLError, reason)
	row.SetStr(DLTopic, task.Topic)
	row.SetInt(DLPartition, int64(task.Partition))
	row.SetInt(DLOffset, rec.Offset)
	row.SetInt(DLTimestamp, rec.Timestamp.UnixMicro())
	if rec.Key == nil {
		row.SetNull(DLKey)
	} else {
		row.SetStr(DLKey, UnsafeString(rec.Key))
	}
	if rec.Value == nil {
		row.SetNull(DLValue) // a tombstone: null, not an empty value
	} else {
		row.SetStr(DLValue, UnsafeString(rec.Value))
	}
}
