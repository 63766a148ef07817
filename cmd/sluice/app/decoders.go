package app

import (
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/config"
	"github.com/sluicehq/sluice/source/avro"
)

// newDecoder builds the decoder of a pipeline from its source and format.
func (b *builder) newDecoder(cp *config.Pipeline) engine.Decoder {
	f := cp.Format
	switch {
	case f.Avro != nil:
		reader := b.readSchema(f.Avro.Pos.Key("schema_file"), f.Avro.SchemaFile)
		if reader == nil {
			return nil
		}
		prog, err := avro.Compile(reader, reader)
		if err != nil {
			b.fail(f.Avro.Pos.Errorf("avro: %v", err))
			return nil
		}
		s, err := engine.NewSchema(reader)
		if err != nil {
			b.fail(f.Avro.Pos.Errorf("avro: %v", err))
			return nil
		}
		return &programDecoder{prog: prog, schema: s}
	}
	b.fail(cp.Pos.Key("format").Errorf("format: not supported yet"))
	return nil
}

// programDecoder decodes records written with the reader schema.
type programDecoder struct {
	prog   *avro.Program
	schema *engine.Schema
}

func (d *programDecoder) Schema() *engine.Schema { return d.schema }
func (d *programDecoder) Decode(rec *engine.Record, row *engine.Row) error {
	return d.prog.Decode(rec.Value, row)
}
