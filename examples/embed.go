// Package examples holds the example jobs, their schemas and sample data. The
// default job of `sluice dev` is embedded from here.
package examples

import "embed"

// FS holds the example jobs (*.yaml), schemas/ and data/.
//
//go:embed *.yaml schemas data/*.avro
var FS embed.FS
