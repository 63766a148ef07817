// Package config reads job files: the YAML a user writes for one job (see
// docs/job-file.md). Decoding is strict: an unknown key, a value of the wrong
// type, a missing required key or a missing ${NAME} environment variable is an
// Error at its FILE:LINE:COL, and every error of a file is reported at once.
// Defaults live in the Default* constants and nowhere else; those that are
// the runtime's own refer to engine's (see docs/contributing.md).
//
// Components decode their own settings from a Plugin (a sink's
// `bigquery: {...}`) with Plugin.Decode, with the same strictness and
// positions. A Config's keys are its fields' `yaml` tags; `required:"true"`
// makes one required; a field named Pos of type Pos receives the mapping's
// position and its keys' positions (Pos.Key); an embedded struct tagged
// `yaml:",inline"` contributes its keys to the mapping that embeds it, which
// is how settings several components share (object sinks' layout) are
// written once. A Text (the pipeline's SQL) maps offsets inside the value back to
// the file, so that SQL errors point into the job file.
//
// Unmarshal gives another file sluice reads (the coordinator's --config) the
// same strictness and FILE:LINE:COL errors; Kafka.Validate checks a `kafka:`
// block wherever it is written.
//
// TLS is the one `tls:` block (Kafka, schema registry, HTTPS and syslog
// sinks) and TLS.Config its one builder.
//
// Nothing here is concurrent: a Job is built once and then only read.
package config
