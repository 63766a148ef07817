// Package app is the sluice command line: it reads job files, wires the
// concrete sources, decoders, SQL programs, sinks and checkpoint stores into
// an engine.Job, and runs it. It is the only package that imports every
// component; the components import only engine.
//
// Paths in a job file: inputs (schema files, file sources) are relative to
// the job file's directory, so a job runs the same from any working
// directory; outputs (file sinks, dead-letter files, file:// checkpoints) are
// relative to the working directory, where a user looks for them.
package app
