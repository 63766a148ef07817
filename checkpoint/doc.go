// Package checkpoint makes the engine's checkpoints durable: the object format,
// the blob stores that hold the objects (a local directory and Google Cloud
// Storage), and the Checkpointer that ties them to the engine's
// CheckpointStore and CheckpointCollector interfaces.
//
// # Objects and keys
//
// Each pod writes one object per checkpoint, holding every task it owns, at
//
//	<prefix>/<4 hex>/<job>/<pod>/<seq>.ckpt
//
// where <prefix> is the path of the store URL and the 4 hex digits are a hash
// of "<job>/<pod>/<seq>" (see Key), so that writes spread over the bucket's
// key space instead of piling onto one sequential range. Objects are
// immutable: a Store creates an object only if its key is free (GCS
// ifGenerationMatch=0; link(2) in a directory), so two writers never
// overwrite one another and a committed offset's metadata names bytes that
// cannot change under it. Old objects are deleted by Collect once no
// committed offset references them and they are not among the pod's newest
// (WithRetain). The engine calls Collect after every commit with the keys
// that committed offsets it knows of still name (engine/doc.go says which);
// the first Collect of a process lists the store, so the checkpoints that
// earlier lives of a restarted pod left are deleted too.
//
// # Format, version 2
//
// All integers are little-endian. uvarint and varint are encoding/binary's
// (LEB128; varint is zigzag-signed). A string is a uvarint byte length and
// the bytes. An object is:
//
//	offset  size  field
//	0       4     magic   "SLCP" (0x53 0x4c 0x43 0x50)
//	4       1     version 2 (Decode also reads 1, below)
//	5       1     flags   bit 0: a sink-state section ends the body;
//	                      bit 1: a pipeline table follows the time;
//	                      a reader rejects any bit it does not know
//	6       4     length  uint32, the whole object's size in bytes, header
//	                      and checksum included: truncation is detected
//	                      before anything else is read
//	10      ...   body
//	n-4     4     crc     uint32 CRC-32C (Castagnoli) of bytes [0, n-4)
//
// The body is:
//
//	string   job
//	string   pod
//	uvarint  seq
//	varint   time          unix microseconds
//	only if header flag bit 1 is set, the pipeline table:
//	uvarint  count
//	string   pipeline      count times, in byte order: the names of the
//	                       pipelines that stand ahead of their task's offset
//	                       in some task of this checkpoint
//	uvarint  topic count
//	per topic, in byte order of the names:
//	  string   topic       each topic's name appears once
//	  uvarint  task count
//	  per task, in partition order:
//	    uvarint  lead      zigzag(partition − previous partition) << 3 | flags,
//	                       where the previous partition of a topic's first task
//	                       is 0; flag bit 0: a state reference follows; bit 1:
//	                       the watermark is 0 (unknown) and is not written;
//	                       bit 2: pipelines ahead of the offset follow
//	    varint   offset    the next offset to read: the lowest position of
//	                       the task's pipelines, which the group commits
//	    varint   time − watermark   only if flag bit 1 is clear
//	    string   state     only if flag bit 0 is set: the name of the task's
//	                       keyed state object
//	    only if flag bit 2 is set, the pipelines ahead:
//	    uvarint  count
//	    per pipeline:
//	      uvarint  index   into the pipeline table
//	      uvarint  ahead   its position − offset, at least 1
//	only if header flag bit 0 is set, the sink-state section:
//	uvarint  count
//	per sink state, in task order:
//	  uvarint  task      index of the task in the order written above
//	  string   name      the sink, "<pipeline>/<sink name>"
//	  string   data      the sink's own opaque state (a BigQuery committed
//	                     stream and its next row offset, say), as of its
//	                     pipeline's position
//
// A pipeline not listed for a task stands at the task's offset, which is
// what a task of a stateless job usually looks like: pipelines move
// together unless one's sink fails. The body ends exactly at the checksum:
// bytes left over are corruption. A stateless task therefore costs about 9
// bytes (1 for the lead, 4–5 for an offset in the millions to billions, 2–4
// for a watermark a second or less behind the checkpoint time), and its
// topic's name once per checkpoint; a pipeline ahead costs 2–4 bytes more
// and its name once.
//
// # Format, version 1
//
// Version 1 is version 2 without the pipeline table (header flag bit 1 is
// unknown to it) and without pipelines ahead: the lead is
// zigzag(partition delta) << 2 | flags, with flag bits 0 and 1 as above.
// Its sink states are named "<pipeline>/<sink index>". Decode reads it; the
// engine gives a state back only to a sink of exactly that name, and drops
// it with a log line otherwise.
//
// Decode checks the length, then the checksum, then the version, before it
// reads a single field, and returns either the whole checkpoint or a
// *CorruptError (errors.Is(err, ErrCorrupt)) and nothing: a damaged object is
// never half-applied. A new layout gets a new version number; readers keep
// decoding every version they ever wrote. The constants marked "part of the
// format, never change" in format.go are this layout.
//
// # Keyed state
//
// State snapshots a task's Pebble database into the store. A snapshot is one
// manifest object, whose key goes in TaskState.State, plus shared objects:
//
//	<4 hex>/<job>/state/<sha-256 hex>.state   the manifest
//	<4 hex>/<job>/state/<sha-256 hex>.sst     an sstable of at least the
//	                                          threshold (default 1 MiB)
//
// Both are named by the SHA-256 of their bytes (the 4 hex digits are its
// first two bytes), so an sstable that later snapshots still hold is written
// once and referred to by each: snapshots are incremental. A manifest has the
// envelope of a checkpoint object (same version, flags, length and CRC-32C)
// with magic "SLST" (0x53 0x4c 0x53 0x54), and the body:
//
//	string   job
//	uvarint  file count
//	per file, in byte order of the names:
//	  string   name      a plain file name of the Pebble checkpoint
//	  uvarint  size
//	  32 bytes           SHA-256 of the contents
//	  1 byte   kind      0: the size bytes of contents follow;
//	                     1: a string follows, the key of a shared object
//
// Restore checks every file against its size and hash before the database is
// opened, and removes what it wrote if any check fails.
//
// # Retries and errors
//
// The GCS store retries, with exponential backoff and jitter (Backoff), only
// what may succeed when tried again: HTTP 408, 429 and 5xx, refused and reset
// connections, attempts that timed out. It never retries a precondition
// failure (ErrExists), a missing object (ErrNotFound) or corruption
// (ErrCorrupt), and it stops when the caller's context is done. Errors name
// the key they concern.
//
// # Concurrency and lifecycle
//
// Stores are safe for concurrent use. A Checkpointer's Save is called from
// one goroutine at a time (engine.CheckpointStore's contract); Load,
// LoadLatest, LoadBefore and Collect may be called concurrently with it.
// Close releases the storage client Open created, once.
package checkpoint
