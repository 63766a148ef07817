//go:build race

package sql_test

// raceBuild: the race detector slows SQLite (translated C) tenfold, so the
// differential test reads fewer records by default.
const raceBuild = true
