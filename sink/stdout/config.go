package stdout

// Destination is "stdout": it names the sink by default.
func (c *Config) Destination() string { return "stdout" }
