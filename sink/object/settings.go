package object

import (
	"time"

	"github.com/sluicehq/sluice/engine/avro"
	"github.com/sluicehq/sluice/engine/config"
	"github.com/sluicehq/sluice/sink/encode"
)

// DefaultPartsPrefix is where the sinks that stage parts as objects of
// their own (gcs, s3) put them unless parts_prefix says.
const DefaultPartsPrefix = "_sluice/parts/"

// Layout is what every object sink's Config says about its objects. The
// sinks embed it inline (`yaml:",inline"`), so that its keys stand beside
// the sink's own in the job file.
type Layout struct {
	// Prefix starts every object name ("denied/").
	Prefix string `yaml:"prefix"`
	// Format is json (lines, the default), csv or avro (OCF).
	Format string `yaml:"format"`
	// Codec compresses Avro blocks: null (the default), deflate, snappy or zstd.
	Codec string `yaml:"codec"`
	// MaxObjectBytes closes an object before it grows past this size
	// (DefaultMaxObjectBytes).
	MaxObjectBytes config.ByteSize `yaml:"max_object_bytes"`
	// MaxObjectAge closes an object this long after its first row
	// (DefaultMaxObjectAge), even when no more rows come.
	MaxObjectAge time.Duration `yaml:"max_object_age"`
}

// Check reports, at their positions under the sink's pos, the settings that
// cannot work.
func (l Layout) Check(pos config.Pos) config.Errors {
	var errs config.Errors
	switch l.Format {
	case "", encode.FormatJSON, encode.FormatCSV, encode.FormatAvro:
	default:
		errs = append(errs, pos.Key("format").Errorf("unknown format %q (expected json, csv or avro)", l.Format))
	}
	if _, err := avro.ParseCodec(l.Codec); err != nil {
		errs = append(errs, pos.Key("codec").Errorf("unknown codec %q (expected null, deflate, snappy or zstd)", l.Codec))
	}
	if l.MaxObjectBytes < 0 || l.MaxObjectAge < 0 {
		errs = append(errs, pos.Errorf("max_object_bytes and max_object_age must not be negative"))
	}
	return errs
}

// Options converts the layout (checked) into the Options of the sink kind.
func (l Layout) Options(kind string) Options {
	c, _ := avro.ParseCodec(l.Codec)
	return Options{Kind: kind, Prefix: l.Prefix, Format: l.Format, Codec: c, MaxObjectBytes: int64(l.MaxObjectBytes), MaxObjectAge: l.MaxObjectAge}
}
