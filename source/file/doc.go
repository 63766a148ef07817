// Package file is a bounded engine.Source over one file: an Avro object
// container file (.avro) or a JSON-lines file (.jsonl, .json).
//
// The file is one task, TaskID{Topic: <path>, Partition: 0}. Run assigns it,
// delivers its records in order in batches with Offset = the record's index
// (0-based), calls End, and returns. A source opened with WithStartAt resumes
// from that offset: the records before it are read and dropped, since a file
// has no index. Commit keeps the positions it is given (Committed) and
// writes nothing: a file source is replayed from the checkpoint, whose
// offset the wiring passes back with WithStartAt.
//
// Records of an OCF file are the binary encodings of single records (slices
// of the decompressed blocks, never reused); the file's own schema is their
// writer schema (WriterSchema), so the wiring builds an avro.Decoder with it
// as writer and the pipeline's schema as reader. Records of a JSON-lines file
// are its non-empty lines without the line break.
//
// Record.Timestamp is the file's modification time for every record.
//
// Concurrency: Run is called once; Commit may be called from another
// goroutine meanwhile. Close releases the file.
package file
