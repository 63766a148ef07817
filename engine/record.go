package engine

import (
	"fmt"
	"time"
)

// TaskID names a task: one topic-partition (or one file of a bounded file source,
// as partition 0 of a topic named after the file).
type TaskID struct {
	Topic     string
	Partition int32
}

func (t TaskID) String() string { return fmt.Sprintf("%s/%d", t.Topic, t.Partition) }

// Header is a Kafka record header.
type Header struct {
	Key   string
	Value []byte
}

// Record is one raw input record of a task, as fetched. Key, Value and header
// values alias the fetched batch; the engine keeps them alive until the bundle
// that holds the record is complete.
type Record struct {
	Key       []byte
	Value     []byte
	Headers   []Header
	Timestamp time.Time
	Offset    int64
	// Size is the record's size on the wire, for byte-based accounting; 0 means
	// len(Key)+len(Value).
	Size int
}

// Header returns the value of the last header named key, or nil.
func (r *Record) Header(key string) []byte {
	for i := len(r.Headers) - 1; i >= 0; i-- {
		if r.Headers[i].Key == key {
			return r.Headers[i].Value
		}
	}
	return nil
}

// Bytes is the record's size for accounting.
func (r *Record) Bytes() int {
	if r.Size > 0 {
		return r.Size
	}
	return len(r.Key) + len(r.Value)
}

// Origin says where a record came from, for error reports and dead letters.
type Origin struct {
	Task   TaskID
	Offset int64
}

func (o Origin) String() string { return fmt.Sprintf("%s@%d", o.Task, o.Offset) }

// DecodeError is a record that could not be decoded. Decoders return it (or
// wrap it) so that the engine can route the record to the dead-letter
// destination with its position.
type DecodeError struct {
	Origin Origin
	Field  string // path of the field being decoded, "" when unknown
	Err    error
}

func (e *DecodeError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("decode %s: field %s: %v", e.Origin, e.Field, e.Err)
	}
	return fmt.Sprintf("decode %s: %v", e.Origin, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// EvalError is a record whose SQL evaluation failed in a way that SQL does not
// turn into NULL (MySQL semantics); Expr names the failing expression.
type EvalError struct {
	Expr string
	Err  error
}

func (e *EvalError) Error() string { return fmt.Sprintf("evaluate %s: %v", e.Expr, e.Err) }

func (e *EvalError) Unwrap() error { return e.Err }
