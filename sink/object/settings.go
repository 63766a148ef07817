package object

import (
	"time"

	"github.com/sluicehq/sluice/engine/avro"
	"github.com/sluicehq/sluice/engine/config"
	"github.com/sluicehq/sluice/sink/encode"
)

// CheckSettings reports, at their positions, the object settings that every
// object sink's Config has: format, codec, max_object_bytes, max_object_age.
func CheckSettings(pos config.Pos, format, codec string, maxBytes encode.ByteSize, maxAge time.Duration) config.Errors {
	var errs config.Errors
	switch format {
	case "", encode.FormatJSON, encode.FormatCSV, encode.FormatAvro:
	default:
		errs = append(errs, pos.Key("format").Errorf("unknown format %q (expected json, csv or avro)", format))
	}
	if _, err := avro.ParseCodec(codec); err != nil {
		errs = append(errs, pos.Key("codec").Errorf("unknown codec %q (expected null, deflate, snappy or zstd)", codec))
	}
	if maxBytes < 0 || maxAge < 0 {
		errs = append(errs, pos.Errorf("max_object_bytes and max_object_age must not be negative"))
	}
	return errs
}

// Settings converts those settings (checked) into Options.
func Settings(kind, prefix, format, codec string, maxBytes encode.ByteSize, maxAge time.Duration) Options {
	c, _ := avro.ParseCodec(codec)
	return Options{Kind: kind, Prefix: prefix, Format: format, Codec: c, MaxObjectBytes: int64(maxBytes), MaxObjectAge: maxAge}
}
