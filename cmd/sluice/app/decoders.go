package app

import (
	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/config"
	"github.com/sluicehq/sluice/source/avro"
	"github.com/sluicehq/sluice/source/file"
	"github.com/sluicehq/sluice/source/generate"
	"github.com/sluicehq/sluice/source/jsonrow"
	"github.com/sluicehq/sluice/source/kafka"
)

// newDecoder builds the decoder of a pipeline from its source and format. A
// file source is opened here, because an Avro container file holds the
// writer schema its records are decoded with.
func (b *builder) newDecoder(cp *config.Pipeline) engine.Decoder {
	f := cp.Format
	if fs := cp.Source.File; fs != nil {
		return b.fileDecoder(cp, fs)
	}
	if g := cp.Source.Generate; g != nil {
		return b.generateDecoder(cp, g)
	}
	switch {
	case f.Avro != nil:
		reader := b.readSchema(f.Avro.Pos.Key("schema_file"), f.Avro.SchemaFile)
		if reader == nil {
			return nil
		}
		var opts []avro.Option
		opts = append(opts, avro.WithLogger(b.o.Logger))
		if avro.Mode(f.Avro.WriterSchema) == avro.ModeRegistry && b.cj.Kafka != nil && b.cj.Kafka.SchemaRegistry != nil {
			cl, err := kafka.RegistryClient(b.cj.Kafka.SchemaRegistry)
			if err != nil {
				b.fail(f.Avro.Pos.Key("writer_schema").Errorf("schema registry: %v", err))
				return nil
			}
			opts = append(opts, avro.WithRegistry(cl))
		}
		d, err := avro.NewDecoder(reader, avro.Mode(f.Avro.WriterSchema), opts...)
		if err != nil {
			b.fail(f.Avro.Pos.Errorf("avro: %v", err))
			return nil
		}
		return d
	case f.JSON != nil:
		return b.jsonDecoder(f.JSON)
	}
	b.fail(cp.Pos.Key("source").Errorf("a kafka source needs a format (avro or json)"))
	return nil
}

func (b *builder) jsonDecoder(j *config.JSONFormat) engine.Decoder {
	t := b.readSchema(config.Pos{}, j.SchemaFile)
	if t == nil {
		return nil
	}
	d, err := jsonrow.New(t)
	if err != nil {
		b.fail(config.Pos{}.Errorf("json: %v", err))
		return nil
	}
	return d
}

// fileDecoder opens a file source and builds its decoder: for an Avro
// container file, the file's schema is the writer and the pipeline's schema
// (or the file's own) the reader; JSON lines need a schema.
func (b *builder) fileDecoder(cp *config.Pipeline, fs *config.FileSource) engine.Decoder {
	path := b.input(fs.Path)
	var opts []file.Option
	if st, ok := b.resume[engine.TaskID{Topic: path}]; ok {
		opts = append(opts, file.WithStartAt(st.Offset, ""))
	}
	src, err := file.Open(path, opts...)
	if err != nil {
		b.fail(cp.Source.Pos.Key("file").Errorf("file source: %v", err))
		return nil
	}
	if b.o.DryRun {
		defer src.Close()
	} else {
		b.files = append(b.files, fileInput{path: path, src: src})
	}
	switch src.Format() {
	case file.FormatAvro:
		return b.writerDecoder(cp, src.WriterSchema(), cp.Source.Pos.Key("file"), "file "+fs.Path)
	default:
		if cp.Format.JSON == nil {
			b.fail(cp.Pos.Key("source").Errorf("a JSON-lines file source needs format: {json: {schema_file: ...}}"))
			return nil
		}
		return b.jsonDecoder(cp.Format.JSON)
	}
}

// generateTopic names the task of a pipeline's generate source.
func generateTopic(cp *config.Pipeline) string { return generate.DefaultTopic + "/" + cp.Name }

// generateDecoder builds a pipeline's generate source and its decoder: the
// generate schema is the writer, the pipeline's avro schema (or the same)
// the reader.
func (b *builder) generateDecoder(cp *config.Pipeline, g *config.GenerateSource) engine.Decoder {
	if g.Schema == "" {
		return nil // a missing required key, reported by the decoding
	}
	writer := b.readSchemaAt(g.Pos.Key("schema"), "schema", g.Schema)
	if writer == nil {
		return nil
	}
	if cp.Format.JSON != nil {
		b.fail(cp.Format.Pos.Key("json").Errorf("a generate source produces Avro: its format is avro or none"))
		return nil
	}
	if a := cp.Format.Avro; a != nil && a.WriterSchema != string(avro.ModeReader) {
		b.fail(a.Pos.Key("writer_schema").Errorf("a generate source writes with its own schema: writer_schema must be reader or absent"))
		return nil
	}
	d := b.writerDecoder(cp, writer, cp.Source.Pos.Key("generate"), "generate schema "+g.Schema)
	if d == nil {
		return nil
	}
	task := engine.TaskID{Topic: generateTopic(cp)}
	opts := []generate.Option{generate.WithTask(task), generate.WithRate(g.Rate), generate.WithSeed(g.Seed), generate.WithCount(g.Count)}
	if st, ok := b.resume[task]; ok {
		opts = append(opts, generate.WithStartAt(st.Offset, ""))
	}
	src, err := generate.New(writer, opts...)
	if err != nil {
		b.fail(cp.Source.Pos.Key("generate").Errorf("%v", err))
		return nil
	}
	if !b.o.DryRun {
		b.generate = append(b.generate, src)
	}
	return d
}

// writerDecoder builds the decoder of records written with writer, a schema
// the source itself holds (an Avro container file's, a generate source's):
// the pipeline's avro schema_file, or writer itself, is the reader. what
// names the source in errors.
func (b *builder) writerDecoder(cp *config.Pipeline, writer *engine.Type, pos config.Pos, what string) engine.Decoder {
	reader := writer
	if a := cp.Format.Avro; a != nil {
		if reader = b.readSchema(a.Pos.Key("schema_file"), a.SchemaFile); reader == nil {
			return nil
		}
	}
	d, err := avro.NewDecoder(reader, avro.ModeReader, avro.WithWriterSchema(writer), avro.WithLogger(b.o.Logger))
	if err != nil {
		b.fail(pos.Errorf("%s: %v", what, err))
		return nil
	}
	return d
}
