// Package sql compiles a pipeline's SQL — one SELECT over the table input —
// into a Program that filters and projects rows of typed slots
// (engine.Transform).
//
// # Language
//
//	SELECT <expr [AS name]>, ... | * | input.* FROM input [AS alias] [WHERE <expr>]
//
// The text is parsed by vitess's MySQL parser and the semantics are MySQL's,
// with these documented choices:
//
//   - Comparisons and LIKE are binary (case-sensitive), as with a _bin
//     collation. Use LOWER() for case-insensitive matching. Enum columns
//     compare as their symbols.
//   - Nested record fields are a.b or a.b.c (input.a.b also works). Array
//     elements and map values are read with ELEMENT_AT(tags, 1) (1-based)
//     and ELEMENT_AT(labels, 'k'), or with MySQL's JSON arrow syntax,
//     tags->'$[0]' (0-based) and labels->'$.k' / labels->>'$."k"'; tags[0]
//     and labels['k'] do not parse in the MySQL dialect.
//   - Integers are BIGINT; overflow of + - * is an error (as in MySQL).
//     Decimal literals and columns are exact (up to 18 digits); exact
//     division gives 4 more decimals (7 / 2 = 3.5000). Division or modulo by
//     zero is NULL. A string in arithmetic or compared with a number is read
//     as a DOUBLE by its numeric prefix ('12abc' is 12, 'abc' is 0).
//   - CAST(x AS SIGNED|UNSIGNED|CHAR|BINARY|DOUBLE|DECIMAL(p,s)|DATE|DATETIME):
//     a string with no numeric prefix casts to 0, a string that is not a
//     date or timestamp casts to NULL, as MySQL does (without the warning).
//   - Timestamps (Avro timestamp-millis/-micros) are SQL timestamps in UTC;
//     they compare with 'YYYY-MM-DD[ hh:mm:ss[.ffffff]]' strings. Functions
//     that read the clock (NOW, RAND, ...) are rejected: output depends on the
//     record only. UNIX_TIMESTAMP returns whole seconds (BIGINT).
//   - REGEXP/RLIKE/REGEXP_LIKE use Go's RE2 syntax and need a constant
//     pattern, compiled once.
//   - HASH64(x) is XXH64 (seed 0) of a string's bytes or an integer's 8
//     little-endian bytes, shifted right by one so that it is never
//     negative: WHERE HASH64(session_id) % 100 < 5 keeps a stable 5 %.
//   - CIDR_MATCH(ip, cidr, ...) is true when ip (text, INET6_ATON bytes, or
//     an INET_ATON number) is in one of the CIDRs (IPv4 or IPv6; an
//     IPv4-mapped IPv6 address matches IPv4 prefixes); constant CIDRs are
//     parsed once; an unparsable address is NULL.
//   - JSON_EXTRACT(s, path) and s->path return the raw JSON text of the value
//     (not re-serialized); s->>path unquotes it; an invalid document is an
//     evaluation error, as in MySQL. One constant path per call.
//   - Window functions (OVER), JOIN, subqueries, ORDER BY and LIMIT are
//     rejected with a message saying so. GROUP BY and aggregates need a
//     window (see Windows).
//
// # Windows
//
// CompileTransform also accepts a windowed aggregation, compiled into an
// *Aggregation (an engine.Aggregator):
//
//	SELECT <keys, aggregates, window_start, window_end, expressions of them>
//	FROM input [WHERE <expr>]
//	GROUP BY TUMBLE(<col>, '<size>') | HOP(<col>, '<slide>', '<size>') | SESSION(<col>, '<gap>')
//	         [, <key expr>, ...]
//	[HAVING <expr>]
//
// The window's column is a timestamp, normally the pipeline's event_time:
// the query's watermark is the highest value of that column its task has
// read (validate does not check that it is event_time). The
// vitess parser takes no INTERVAL as a function argument, so intervals are
// strings: '<n> <unit>' (MICROSECOND to DAY, singular or plural) or a Go
// duration ('90s', '1m30s'). A hopping window's size is a multiple of its
// slide. Tumbling and hopping windows are [start, end) aligned on the Unix
// epoch; a session is the records of a group each within the gap of the
// previous one, window_start its first event time and window_end its last
// plus the gap. window_start and window_end are TIMESTAMPs.
//
// Aggregates: COUNT(*), COUNT(x), COUNT(DISTINCT x), SUM, MIN, MAX, AVG,
// ANY_VALUE and APPROX_COUNT_DISTINCT(x) (HyperLogLog++ at precision 14:
// exact for small groups, about 0.8 % standard error for large ones). SUM
// of integers is BIGINT (it wraps past 2^63, unlike MySQL's DECIMAL), of
// doubles DOUBLE, of decimals DECIMAL(18, s); AVG is DOUBLE; MIN, MAX and
// ANY_VALUE keep their argument's type; ANY_VALUE is the first non-NULL
// value read. Aggregates ignore NULLs (COUNT(*) counts rows); over no
// values SUM, AVG, MIN, MAX and ANY_VALUE are NULL. The SELECT list and
// HAVING may combine keys (an expression written as in GROUP BY),
// aggregates and the window bounds with any function; a column outside
// them is an error that says so. A GROUP BY without a window is an error:
// its state would never close.
//
// The query is compiled into two stateless programs around the state: one
// over input (the window column, the keys, the aggregate arguments, the
// WHERE), one over the closed window (the SELECT list, HAVING as its
// WHERE), so every function and type rule above applies unchanged. Each
// task folds rows into its own state (NewAggregate); a window is emitted
// once the task's watermark — the highest event time it has read — is
// past its end plus the allowed lateness, in the order of ends, starts and
// keys, so that a replay emits the same rows in the same order. A record of
// an emitted window is late (the runtime dead-letters it); for a hopping
// window, a record any of whose windows was emitted. The state is saved
// at the end of each bundle as one log entry holding every group that
// changed (engine.Aggregate.Save; for a tumbling or hopping window, only
// the windows folded into; a group's key is written with its first change
// only, later ones name it by a number); a group whose last window closed
// is deleted by the log, and the log is rewritten from the live groups
// once it outgrows twice their size, so the store stays proportional to
// the open windows.
//
// # Shuffle
//
// A task's windows are exact only for the records of its own partition:
// when a group's records are spread over partitions, the result per group
// and window needs a shuffle by group key. The package holds its two
// halves, the protocol between them, and the halves as engine transforms
// (ShuffleProducer, ShuffleMerger; ShuffleSchema is the row of one
// message); cmd/sluice wires them for a pipeline with aggregation: shuffle,
// as Kafka Streams does: an internal repartition topic,
// <job>.<pipeline>.repartition, with as many partitions as the input (or
// as configured), created by sluice when absent and read by the job's own
// consumer group, so that its tasks are assigned, checkpointed and moved
// on a rescale like any other.
//
// A source task (a producer) folds its records into a Partial (the task
// state of a ShuffleProducer). Lateness is judged at the source, against
// the task's own watermark, exactly as in per-partition mode; late records
// are dead letters there, with their bytes. When the bundle [from, to)
// closes, the producer's Seal hands out one partial per group folded
// (key: the encoded group key; value: its windows in the state's group
// encoding), which the task's repartition writer sends to partition
// hash(key) mod N, then a progress record (the source offset after the
// bundle and the task's watermark) to every partition; the bundle is
// complete only once Kafka acknowledged all of them (acks=all, idempotent
// producer). Each writer of the task (a new owner's, or the one reopened
// after a failed send) sends, before its first partial, a start record
// (a new epoch, above every earlier one of the task, and the offset its
// first bundle starts from) to every partition, and a commit record (the
// offset committed) to every partition after each commit of the job's
// offsets. A producer whose input is idle for idle_timeout advances its
// watermark with the wall clock and sends progress at the offset it
// stands at; one that has no watermark yet (an empty partition: nothing
// to advance) sends, once, an idle mark (ShuffleIdle) instead.
//
// A task of the repartition topic (a merger) feeds those records to a
// ShuffleMerge (the task state of a ShuffleMerger): partials stay pending
// per producer until a commit record covers their offsets; a start record
// of a newer epoch says where the producer restarts, and the pending
// partials from that offset on are dropped (they will be replayed), those
// below stay pending until a commit covers them; records of an older
// epoch than the producer's latest are a zombie's and are ignored. Merged partials go
// through Merge.MergePartial: a tumbling or hopping window into the window
// of the same start, a session into every session of its group it comes
// within the gap of. The merger's watermark is the lowest of its
// producers' watermarks at their committed offsets, once every producer
// (the source's partition count, which the start records announce, so
// that a replay waits for the producers its first run waited for) has
// shown itself (a progress or an idle
// mark at an offset already committed holds at once); a producer whose
// idle mark a commit covers is left out of it until it sends a partial
// or a progress again (then it is back in, with the watermark it had, so
// the merger's watermark waits for its next commit), as Flink leaves an
// idle source split out; while every producer is idle the watermark
// stands. Windows are emitted by Fire as in a per-partition aggregate,
// and the merger's state (open windows, producers and whether they are
// idle, pending partials) is saved and snapshotted like any task's.
//
// An idle mark claims no event time: the producer cannot know how far
// behind the wall clock event time is, and a claim ahead of the other
// producers would make its later records late for no reason. The price
// is that its records of windows emitted while it was left out are late
// at the merger, not at the source, where only their partials remain:
// they are dropped and counted (ShuffleMerge.Late, reported per bundle
// through ShuffleMerger.CountLate). The same holds for a source
// partition added while the job runs, until its first message reaches
// the merger.
//
// Why this delivers each record to exactly one emitted row:
//
//   - Nothing is lost: a producer's offset advances only past a bundle
//     whose partials and progress Kafka acknowledged, and they are merged
//     once a commit record covers that offset (the task's next owner, which
//     starts from the committed offset, sends one at its first commit if
//     the last owner could not).
//   - Nothing counts twice: a record is merged only through a partial
//     [from, to) with to at or below a committed offset. After a crash the
//     producer replays from its committed offset, which is a bundle bound
//     of the run that committed it (a checkpoint holds complete bundles
//     only), so every replayed partial starts at or above every merged
//     one; the partials of the crashed run past that offset were dropped
//     at the start record, which precedes the replay in every partition.
//     A writer reopened after a failed send starts, in a new epoch, from
//     the failed bundle's start: what of that bundle reached the topic is
//     dropped, the earlier bundles stay pending, and the start merges
//     nothing, so a crash before their commit still replays them once.
//     Deduplicating by (producer, offset) alone would not do: a replay's
//     bundles have other bounds, so a replayed partial can straddle a
//     merged one, and a partial cannot be split.
//   - Nothing is late at the merger but what an idle or new producer
//     sends of windows emitted without it: while a producer is in the
//     watermark, the watermark is at most its watermark at its committed
//     offset, at most the watermark it had when it read any later record,
//     and each record's partial precedes, in its partition, the commit
//     record that may advance the watermark past it. So a record the
//     source accepted is never behind a window the merger emitted while
//     its producer was counted (ShuffleMerge.Late counts the partials
//     that are: an idle or new producer's, or a broken producer's).
//   - A merger that crashes resumes from its snapshot and offset and
//     replays its partition; ShuffleMerge is deterministic in its input
//     order, so it emits the same rows in the same order, and a sink that
//     deduplicates replays gives exactly-once rows, as for any stateful
//     task.
//
// The cost: the partials of a bundle (one per group and window touched)
// plus N progress and N commit records per producer, instead of every
// record; the windows are emitted up to one checkpoint interval later than
// per partition, since a merger waits for commits.
// TestWindowShuffleDifferentialSQLite drives the protocol with producer
// crashes, replays in bundles of other bounds, zombies and merger restarts,
// and compares the rows with SQLite's aggregation over all the records;
// TestShuffleTaskRestart and TestShuffleTaskIdleProgress drive the task
// halves through a failed send, a crash and an idle producer;
// TestShuffleMergeIdleProducer through an empty partition that goes idle
// and later receives records. Epochs are
// wall-clock microseconds, raised above the task's previous epoch in the
// process and in its checkpoint: a new owner's epoch is above its
// predecessor's unless their clocks differ by more than the handover takes
// (a drain, or a session timeout).
//
// CompileDedup wraps a transform in a Deduplication: a record whose key
// (an expression) was seen, in the same task, within a span of event time
// is dropped before the transform runs; keys expire with the watermark.
//
// Program.Columns lists the input columns a program reads, so that a decoder
// decodes only those (engine.ColumnReader and engine.Projector).
//
// Output columns are named by their alias, else by the column name for a
// column reference, else f<i>_ (BigQuery's convention) for the i-th
// (0-based) select item. Duplicate names are an error.
// Output types: BOOLEAN → boolean, BIGINT → long, DOUBLE → double,
// DECIMAL → bytes/decimal(18, s), strings → string, TIMESTAMP → long
// timestamp-micros, DATE → int date; a column that may be NULL is the union
// [null, T]. Copied columns keep their input type (enums, fixed, nested
// records, arrays and maps included).
//
// # Errors
//
// Compile returns *Error for syntax and semantic errors, with the byte
// offset of the offending token in the SQL text (and its line:column within
// it), so that the caller can report FILE:LINE:COL through
// config.Text.At(Offset). Eval returns an error wrapping *engine.EvalError,
// naming the expression, for what MySQL does not turn into NULL: integer
// overflow, invalid JSON, decimals out of range.
//
// # Compilation and concurrency
//
// Compile resolves every column to its slot, chooses the type of every
// expression, folds constants and compiles the tree into nested typed
// closures (func(in, out *engine.Row) (T, ok, error) for T in bool, int64,
// float64, string): nothing is interpreted from the AST per row, no value is
// boxed. Constant patterns (LIKE, REGEXP, CIDR, DATE_FORMAT, JSON paths, IN
// lists) are prepared once.
//
// A Program is immutable: Eval may be called from any number of goroutines
// at once. All per-call state lives in out: computed strings are appended to
// out.Arena; copied strings alias in. Eval allocates nothing in steady state
// (once out's slices have grown) except for string functions on non-ASCII
// text. A Registry of user functions is written before Compile and only read
// afterwards.
//
// # Limits
//
// A statement is at most MaxTextBytes (256 KiB) and MaxTokens (50,000)
// tokens; past either, Compile returns an *Error saying which. Compilation is
// linear in the statement's size: each operator is located by a forward scan
// of the token stream, and an expression keeps a bounded text for its error
// messages (long ones are cut and end in "…").
package sql
