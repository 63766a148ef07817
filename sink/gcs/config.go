package gcs

// Destination is the bucket and prefix the sink writes under,
// "bucket/prefix": it names the sink by default and finds two sinks whose
// objects would share names.
func (c *Config) Destination() string { return c.Bucket + "/" + c.Prefix }
