// Package generate produces records for demos, load tests and benchmarks:
// the `generate` source of a job file (Source), and the generators behind
// it, which `sluice dev`, the benchmarks and the tests share.
//
// # Generators
//
// Traffic generates realistic firewall traffic records of the schema
// examples/schemas/traffic.avsc (and its evolution traffic_v2.avsc). The
// distribution is seeded and deterministic: a few hot applications and
// source/destination IPs dominate (Zipf), ~90% of records are ALLOW and ~10%
// DENY/DROP/RESET_*, destination ports are mostly 443/80/53, byte counts are
// log-normal, timestamps advance by an exponential gap (~5000 records per
// simulated second) from WithStart (default Epoch), optional fields are null at plausible rates.
// Records come as a Record struct (usable by hamba/avro: its avro tags
// follow the schema), as Avro binary (AppendAvro, AppendAvroV2) and as
// goavro's native form (Native), so that every decoder can be fed the same
// values. Generation costs a few microseconds per record: strings come from
// pools built by NewTraffic.
//
// Random generates seeded random datums of any record schema (see its doc
// for the values). NewDatums picks between them: Traffic when the schema's
// fingerprint is a traffic schema's (TrafficFingerprint,
// TrafficV2Fingerprint), Random otherwise. The binary encoding is
// engine/avro's.
//
// # Source
//
// A Source has one task (topic DefaultTopic, or WithTask's) whose records
// are generated datums with Offset = the record's index and Timestamp = the
// time they were generated. New takes functional options, each naming its
// default: WithRate paces it (records per second, 0 = as fast as the runtime
// takes them); WithCount bounds it (it ends its task after that many, and
// Run returns nil, so a job of bounded sources exits once drained); WithSeed
// makes it deterministic (timestamps included, from Epoch); WithStartAt
// resumes from a checkpointed offset by generating and dropping the records
// before it. The wiring builds the pipeline's decoder with the source's
// schema as the writer schema.
//
// # Concurrency
//
// A Traffic or Random generator belongs to one goroutine; Next reuses its
// Record. A Source's Run is called once; Pause, Resume and Commit may be
// called from other goroutines meanwhile.
package generate
