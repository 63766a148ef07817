// Package jsonrow decodes JSON-lines records into rows of a schema given as
// an Avro schema (format: json in the job file).
//
// A record is one JSON object whose keys are field names: nested objects for
// nested records, arrays for arrays, objects for maps, null or a value for a
// nullable union. A general union takes either a bare value (the first branch
// that accepts its JSON kind) or Avro's JSON form {"branch-name": value}.
// Enums are their symbol (an unknown symbol takes the enum's default). Bytes
// and fixed are strings whose code points 0-255 are the bytes, as in Avro
// defaults. Timestamps, dates and times are numbers in the schema's unit, or
// strings: RFC 3339 for timestamps, 2006-01-02 for dates. A missing field
// takes its default, or null when it is nullable; otherwise it is an error.
// Unknown keys are ignored.
//
// Errors are *engine.DecodeError with the field path.
//
// Decoding parses the line with encoding/json into generic values first: it
// allocates per record (unlike the Avro decoder), and strings in the row are
// Go strings of their own, not aliases of the record.
//
// A Decoder is immutable and safe for concurrent use.
package jsonrow
