// Package checkpoint makes the engine's checkpoints durable: the object format,
// the blob stores that hold the objects (a local directory, Google Cloud
// Storage, Amazon S3 and S3-compatible services, Azure Blob Storage), and the
// Checkpointer that ties them to the engine's CheckpointStore and
// CheckpointCollector interfaces.
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
// immutable: a Store creates an object only if its key is free (see Stores),
// so two writers never
// overwrite one another and a committed offset's metadata names bytes that
// cannot change under it. Old objects are deleted by Collect once no
// committed offset references them and they are not among the pod's newest
// (WithRetain). The engine calls Collect after every commit with the keys
// that committed offsets it knows of still name (engine/doc.go says which);
// the first Collect of a process lists the store, so the checkpoints that
// earlier lives of a restarted pod left are deleted too.
//
// # Stores
//
// Open picks the store from the URL's scheme. Every store stores opaque
// bytes under the same keys and keeps the same contract (Store): a Put is
// atomic (readers see the whole object or nothing), durable when it returns,
// and creates the object only if its key is free — of two racing Puts of one
// key exactly one succeeds, the other gets ErrExists and the object is the
// winner's. What each relies on:
//
//	file:///dir          Dir: the file is written and fsynced under a temporary
//	                     name, then link(2)ed to its key (link fails if the
//	                     name exists); the directory is fsynced.
//	gs://bucket/prefix   GCS: one upload with ifGenerationMatch=0 and the
//	                     object's CRC-32C, which GCS verifies before it
//	                     creates the object.
//	s3://bucket/prefix   S3: one PutObject with If-None-Match: * (S3's
//	                     conditional write, 412 when the key exists) and the
//	                     CRC-32C, which S3 verifies; reads are checked by
//	                     the format's own checksums. The query
//	                     may set region=, endpoint= (MinIO, R2, any
//	                     S3-compatible service) and path_style=true. A
//	                     service that ignores If-None-Match (older MinIO,
//	                     some S3 clones) does not keep the contract: two
//	                     zombie pods could then overwrite one another's
//	                     checkpoint, which the format's checksum still
//	                     catches when the bytes are torn, but not when both
//	                     are whole.
//	azblob://ctr/prefix  Azure: one Put Blob with If-None-Match: * (409
//	  (or az://)         BlobAlreadyExists when the blob exists) and the
//	                     MD5 of the bytes, which Azure verifies and keeps;
//	                     reads check the bytes against it (a blob that
//	                     fails twice is corrupt). The query may set
//	                     account= and endpoint=. az:// is accepted as the
//	                     same store because DuckDB, fsspec and Polars users
//	                     write it; azblob:// (the Go CDK's name) is the one
//	                     the documentation uses.
//
// Credentials are the clouds' own: GCS's application default credentials
// (workload identity on GKE), AWS's default chain (environment, shared
// profile, web identity — IRSA on EKS —, pod identity, instance role), and
// for Azure AZURE_STORAGE_CONNECTION_STRING, else AZURE_STORAGE_KEY with the
// account, else DefaultAzureCredential (workload identity on AKS, managed
// identity). No secret is ever part of a store URL, which is logged.
//
// Whatever the store, every checkpoint object and state manifest carries
// its own CRC-32C and every shared state file its SHA-256 (below), so a torn
// or rotten object is detected when it is read, and LoadLatest falls back
// on the pod's previous sound checkpoint.
//
// The tests run one conformance suite (TestStoreConformance) over the four
// stores, each through its real client: fake-gcs-server, gofakes3 v1.2.0
// and Azurite. All three enforce the create-if-absent precondition (the S3
// and Azure stores check nothing themselves, so the suite's race cases
// would fail against a fake that did not).
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
// TaskStates (engine.StateStore) keeps each task's keyed state in a Pebble
// database under a local directory, with no WAL (a task's state always
// comes back from its snapshot), flushes it before each snapshot so that a
// snapshot's new data is an sstable shared by later snapshots, and restores
// it through State. State objects that no checkpoint names any more are
// collected (below).
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
// # Collecting state objects
//
// Collect deletes a pod's old checkpoints; CollectState deletes the state
// objects they leave behind. It lists the store, reads every checkpoint of
// the job that is there (the ones each pod's Collect retains, of every pod,
// so a task's state that moved to another pod is still seen) and the
// manifests they name, and deletes a manifest or shared file of the job that
// none of them refers to once it has been seen unreferenced for the grace
// period (WithStateGrace, default 1 hour). The clock is the collecting
// process's: it remembers when it first found each object unreferenced, so
// a store needs no modification times and pods need no common clock, and a
// restarted process starts the count again (collection is late, never
// early). An object found referenced again is forgotten. A checkpoint or
// manifest that cannot be read for any reason but its absence stops the
// collection: nothing is deleted while the references are not all known.
// Collect runs CollectState at its first call and then every quarter of
// the grace period.
//
// The grace period is what makes collection safe against writers it does
// not see. A snapshot's shared files are written first, then its manifest,
// then the checkpoint naming it: in between they are unreferenced, and a
// collector listing the store then keeps them for the grace period, by
// which time the checkpoint is there. A State also remembers which
// sstables it has uploaded, and would name one again in a later snapshot
// without writing it; it trusts that memory for half the grace period only
// and then writes the file again (a Put that finds the object there is
// enough), so that an object collected because every checkpoint naming it
// failed for that long is back before a checkpoint names it again. The
// grace period must therefore be much longer than a snapshot plus a
// checkpoint Save; one hour is hundreds of checkpoint intervals.
//
// # Retries and errors
//
// The remote stores (GCS, S3, Azure) turn their SDK's retries off and retry
// themselves, with sluice's one backoff (engine/backoff: exponential, equal
// jitter; Backoff sets its base, cap, attempts and per-attempt timeout), only
// what may succeed when tried again: HTTP 408, 429 and 5xx, S3's 409
// ConditionalRequestConflict (an overlapping conditional write of the same
// key), refused and reset connections, attempts that timed out, bytes that
// failed their transfer checksum. They never retry a precondition failure
// (ErrExists), a missing object (ErrNotFound) or corruption (ErrCorrupt), and
// stop when the caller's context is done. S3 and Azure mark what no retry
// can fix — HTTP 400, 401, 403, a missing bucket or container — with
// engine.Permanent. Errors name the key they concern.
//
// # Concurrency and lifecycle
//
// Stores are safe for concurrent use. A Checkpointer's Save is called from
// one goroutine at a time (engine.CheckpointStore's contract); Load,
// LoadLatest, LoadBefore and Collect may be called concurrently with it.
// Close releases the storage client Open created, once (the S3 and Azure
// clients hold nothing to release).
package checkpoint
