// Package gen generates realistic firewall traffic records of the schema
// testdata/schemas/traffic.avsc (and its evolution traffic_v2.avsc): the one
// source of test and benchmark data shared by `sluice dev`, the end-to-end
// benchmarks and the SQL benchmarks.
//
// The distribution is seeded and deterministic: a few hot applications and
// source/destination IPs dominate (Zipf), ~90% of records are ALLOW and ~10%
// DENY/DROP/RESET_*, destination ports are mostly 443/80/53, byte counts are
// log-normal, timestamps advance by an exponential gap (~5000 records per
// simulated second) from Start, optional fields are null at plausible rates.
//
// Records come as a Record struct (usable by hamba/avro: its avro tags follow
// the schema), as Avro binary (AppendAvro, AppendAvroV2) and as goavro's
// native form (Native), so that every decoder can be fed the same values.
//
// A Gen is not safe for concurrent use; Next reuses its Record. Generation
// costs a few microseconds per record, most of it in formatting nothing:
// strings come from pools built by New.
package gen
