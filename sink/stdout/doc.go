// Package stdout is the stdout sink, for demos and debugging: rows as JSON
// lines or CSV on the process's standard output.
//
//	sinks:
//	  - stdout: {format: json}   # json (default) | csv
//
// Each task's Writer buffers its rows; Flush writes the buffer in one piece
// under the sink's lock, so lines of different tasks never interleave. The
// CSV header is written once, before the first rows. Rows are acknowledged
// once written (a terminal or pipe gives no stronger promise).
package stdout
