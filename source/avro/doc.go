// Package avro decodes Avro binary data straight into engine rows.
//
// # Schemas
//
// ParseSchema reads an Avro 1.11 schema (JSON) into an *engine.Type with its
// own parser over encoding/json (neither goavro nor hamba exposes a parsed
// schema with defaults as JSON and full names as engine.Type needs them):
// named types and namespaces, references by full or short name, field
// aliases, defaults (kept as JSON text in Field.Default and validated against
// the field's type), enum defaults, and the logical types decimal (bytes and
// fixed), uuid, date, time-millis, time-micros, timestamp-millis,
// timestamp-micros, local-timestamp-millis, local-timestamp-micros and
// duration. An unknown or invalid logical type is ignored, as the
// specification says. Recursive types are rejected, because a row gives every
// value a fixed number of slots. Aliases of named types are not kept
// (engine.Type has no place for them).
//
// The format itself — the primitives of the binary encoding, the Parsing
// Canonical Form and full form of a schema, fingerprints, object container
// file framing and the Kafka framings — is engine/avro's, shared with the
// sinks' encoders; this package imports it as wire. OCFReader splits the
// blocks that wire.BlockReader reads into records, with the file's schema.
//
// # Programs
//
// Compile resolves a (writer, reader) pair per the specification's schema
// resolution: fields matched by name or reader alias, writer fields the
// reader lacks skipped, reader fields the writer lacks filled from their
// defaults, int→long→float→double and string↔bytes promotions, enum symbols
// mapped by name with the reader's default for unknown ones, unions on either
// side. Every incompatibility is a *CompatError, all reported at once: a bad
// pair fails when it is compiled, never in the middle of a stream. Unlike the
// specification, which lets a writer union branch without a reader match
// fail only when such a value arrives, Compile rejects it up front. The names
// of the two top-level records are not compared (registries routinely rename
// them); nested named types must match by unqualified name.
//
// A Program is a tree of small ops executed by an interpreter that writes
// each value into its slot of the reader row (layout: engine.Type.Width):
// scalars into their slot, nested records into consecutive slots after a
// header slot whose Null marks a null record, a nullable union into the
// inner type's slots with Null set on the first for null, a general union as
// a branch-index slot followed by each non-null branch's slots, arrays and
// maps into Row.Ext (an element of width w takes w consecutive slots, a map
// entry one more in front for its key). A default is decoded from its Avro
// encoding, prepared at compile time, by the same interpreter.
//
// # Projection
//
// A Program compiled WithProjection decodes only the reader columns it names
// (the columns a pipeline's SQL and event time read: the runtime asks
// Decoder.Project for them through engine.Projector). Every other writer
// field is skipped at the wire level without touching its slots, by a skip
// plan: a flat list of small instructions. Nested records are flattened
// into their fields and runs of like values merged: a run of strings, and
// of strings mixed with unions of null and a string, is one instruction
// that jumps each by its one-byte length (a union's end chosen without a
// branch on its index, which data does not make predictable); a run of
// varints one that finds their ends eight bytes at a time (a word with no
// last byte is a nine-byte varint when the next byte ends it); fixed-size
// values one jump; a union of null and one varint or fixed-size value one
// instruction; other unions by their branch's plan; arrays and maps block
// by block (a block with its byte size, or of fixed-size elements, in one
// jump). Writer fields the reader lacks are skipped the same way in every
// program. A projected program is itself one such plan, its decoded values
// instructions among the skips: an int, long or enum is decoded eight bytes
// at a time without a branch on its length, a string or bytes aliased from
// its one-byte length, each written into its slot whole. One loop runs the
// plan without a call, reading the input without a bounds check per byte
// (each instruction checks the bytes left once) while its fast paths apply;
// any other encoding (a longer length, a varint of ten bytes or near the
// end of the input, a bad index, a truncation) hands that one instruction
// to an exact reader that names the field in its error. Compatibility is
// checked for every field, so a projection never changes which writer
// schemas compile. Decode stops after the last projected value, even
// inside a nested record: bytes after it are not read, so a record damaged
// only there is not a dead letter (DecodePrefix, which must find the
// record's end, walks it all). A projected program clears Row.Ext and the
// slots of the top-level fields it decodes that it does not write whole,
// and writes no other slot, so the runtime does not Reset its row between
// records (engine.RowPreparer).
//
// Strings and bytes alias the input (engine.UnsafeString): the caller keeps
// the input alive as long as the row. In steady state a decode allocates
// nothing: Row.Slots and Row.Ext are reused.
//
// # Malformed input
//
// Every length, count and index is checked against the bytes left before it
// is used, so no input panics or allocates without bound: a block count is
// bounded by the bytes left divided by the element's minimum size, and the
// elements of one record by WithMaxElements (DefaultMaxElements). Errors are
// *engine.DecodeError with the field path, wrapping ErrTruncated,
// ErrVarintOverflow, ErrIntOverflow, ErrNegativeLength, ErrUnionIndex,
// ErrEnumIndex, ErrTooManyElems, ErrBlockCount or ErrTrailing.
//
// # Writer schemas from a registry
//
// With ModeRegistry the Decoder fetches each schema id once (franz-go's sr
// client), compiles it and caches the program. Decode has no context, so a
// fetch runs under its own timeout (WithFetchTimeout, DefaultFetchTimeout: 10 s), within which
// registry faults are retried with engine/backoff's default policy; the task
// whose record needs the schema waits meanwhile. What the registry answers
// decides what happens to the record:
//
//   - HTTP 404 (error code 40403, "schema not found"), a schema that is not
//     Avro, or one with references: a *engine.DecodeError wrapping
//     ErrUnknownSchema, which dead-letters the record. The answer is cached
//     for WithRetryAfter (DefaultRetryAfter: 10 s) before the id is asked again.
//   - Any other status (5xx, 429, 401/403), a refused or reset connection,
//     a timeout: an error wrapping engine.ErrUnavailable that names the
//     HTTP status (never the registry's URL, which may hold credentials). It
//     says nothing about the record, so it is not a DecodeError: the engine
//     holds the task and retries instead of dead-lettering. It is cached for
//     a second, so the records behind it fail at once rather than each
//     waiting out a fetch.
//
// # Concurrency
//
// Types and Programs are immutable once built and shared freely between
// goroutines. A Decode uses only the row it is given.
package avro
