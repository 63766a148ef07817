package file

import "path/filepath"

// Destination is the cleaned path of the file, as written (relative paths
// are relative to the working directory): it names the sink by default and
// finds two sinks (or a sink and a dead-letter file) writing one file.
func (c *Config) Destination() string { return filepath.Clean(c.Path) }
