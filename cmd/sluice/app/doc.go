// Package app is the sluice command line: it reads job files, wires the
// concrete sources, decoders, SQL programs, sinks and checkpoint stores into
// an engine.Job, and runs it. It is the only package that imports every
// component. Components import engine and its subpackages (engine/config for
// settings and positions, engine/backoff for retry pauses) and never another
// component, except the shared encoders every sink uses (sink/encode) and the
// Avro decoder the file source reads container files with (source/avro).
//
// Sinks are named by their `name:` or by kind and destination (sinkName);
// that name keys their checkpointed state, metrics and logs. Every log line,
// dead-letter error text, readiness reason, status page and /metrics answer
// passes through the job's redactor (config.Job.Redactor), which removes the
// values of ${NAME} and secret files, URL userinfo and query strings. The
// public HTTP endpoint (metrics.listen) serves only what reads; POST /drain is
// on metrics.admin_listen, loopback by default. validate and render return on
// a signal even while blocked reading a file.
//
// The long-running commands (run, dev, coordinator) share one service
// (serve.go): /metrics, /healthz, /readyz and a status page on the public
// address, POST /drain on the admin address, and signal handling where the
// first SIGTERM or SIGINT drains and a second one aborts at once. The
// coordinator command (coordinator.go) wires the scaler library: its flags,
// its --config file (decoded with engine/config's strictness and positions),
// its Kafka and Kubernetes clients.
//
// Before a job starts, run and dev set the process's garbage collector for
// it (gc.go: memory.gc_percent, and a soft memory limit below the
// container's), leaving alone what GOGC and GOMEMLIMIT set.
//
// Paths in a job file: inputs (schema files, file sources) are relative to
// the job file's directory, so a job runs the same from any working
// directory; outputs (file sinks, dead-letter files, file:// checkpoints) are
// relative to the working directory, where a user looks for them.
package app
