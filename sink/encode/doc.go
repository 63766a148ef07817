// Package encode turns rows (engine.Row) into bytes for the sinks: JSON
// objects, CSV records, Avro binary datums and Avro object container files.
// Every encoder is compiled once from a schema into a tree of nodes that
// reads row slots directly; encoding a row appends to a caller's buffer and
// allocates nothing in steady state (except for decimals wider than 64
// bits).
//
// # Concurrency
//
// Encoders (JSON, CSV, Avro) are immutable once built and safe for concurrent
// use by any number of goroutines. An OCFWriter (and the Container of
// NewOCF) holds compression state and belongs to one goroutine at a time.
//
// # Row layout
//
// The encoders follow the slot layout documented on engine.Type.Width: a
// nested record takes a header slot (its null flag) followed by its fields; a
// nullable union [null, T] takes T's slots with Null set on the first; any
// other union takes a branch slot (N = branch index) followed by the slots of
// its non-null branches; an enum slot holds the ordinal in N and the symbol in
// S; arrays and maps hold their elements in Row.Ext (N = first slot, L =
// count), a map entry taking one extra slot for its key. A slot with Null set
// encodes as null wherever the format can say so.
//
// # JSON
//
// One object per row, fields in schema order, no trailing newline (callers add
// the framing: a newline for JSON lines, commas for arrays). Values:
//
//   - strings are escaped as encoding/json does, except that <, > and & are
//     kept as they are (the output is never embedded in HTML); invalid UTF-8
//     becomes U+FFFD
//   - bytes and fixed are base64 (standard alphabet, padded)
//   - enums are their symbols
//   - timestamp-millis/micros are RFC 3339 strings in UTC with exactly six
//     fractional digits ("2024-05-01T12:00:00.123456Z"); local-timestamp-*
//     are the same without the zone; date is "2006-01-02"; time-millis and
//     time-micros are "15:04:05.000000"
//   - decimals are strings holding the exact decimal number ("-12.30")
//   - duration is {"months":M,"days":D,"millis":MS}
//   - NaN and infinities, which JSON cannot represent, are the strings "NaN",
//     "Infinity" and "-Infinity"
//   - a union is the value of its branch, without Avro's {"type": value}
//     wrapper: the receivers of sinks (SIEMs, BigQuery loads) want plain values
//   - nested records are objects, arrays are arrays, maps are objects
//
// # CSV
//
// RFC 4180: records end with CRLF; a field is quoted when it holds a comma, a
// double quote, CR, LF or starts with a space, and quotes inside are doubled.
// One column per leaf of the schema: nested records are flattened into
// columns named by their dotted path ("src_location.country"), as in the
// header line from Header. A null is an empty unquoted field, the empty string
// is "" (so that readers that care can tell them apart). Scalars are written as
// in JSON but without the JSON quoting; arrays, maps and unions holding a
// record are JSON text in one field.
//
// # Avro
//
// Avro binary encoding per the Avro 1.11 specification, with the primitives
// of engine/avro, which owns the format for both directions (the decoder in
// source/avro uses the same package). The schema of a type is engine/avro's
// Schema: named types defined at their first use and referenced by full
// name afterwards, types without a name (built by the SQL planner) named
// after their path, field defaults kept. NewOCF binds a row schema to
// engine/avro's Container, which writes object container files: the header
// (magic, metadata with avro.schema and avro.codec, a 16-byte sync marker)
// and blocks (count, size, the compressed datums, the sync marker), with the
// null, deflate, snappy (with its CRC-32) and zstandard codecs. OCFWriter
// writes rows to an io.Writer through them.
package encode
