// Package gen is the benchmarks' and tests' short name for the firewall
// traffic generator of source/generate (Traffic), which `sluice dev`, the
// generate source of job files, the end-to-end and SQL benchmarks and the
// decoder tests share. It holds no code of its own: every name here is an
// alias of source/generate's, so that there is one generator and one
// distribution. See source/generate for what the records look like.
package gen
