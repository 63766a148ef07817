package engine

import (
	"fmt"
	"slices"
)

// ColumnReader is implemented by transforms that know which input columns
// they read (sql.Program): paths as Schema.Lookup takes them, a nested record
// read whole as its own path. New calls Columns once per pipeline, from its
// caller's goroutine; the result is read, not kept.
type ColumnReader interface {
	Columns() []string
}

// Projector is implemented by decoders that can skip, at the wire level, the
// input columns no pipeline reads (source/avro). New calls Project once per
// decoder, before any Decode, with the union of the columns read by the
// transforms of every pipeline sharing it and their event-time columns. A
// decoder shared with a pipeline whose transform is not a ColumnReader is
// not projected. The slots of columns outside the projection hold whatever
// Row.Reset (or, for a RowPreparer, NewRow) left there.
type Projector interface {
	Project(columns []string) error
}

// RowPreparer is implemented by decoders that may prepare the row they decode
// into themselves (source/avro once projected): when PreparesRows is true,
// every Decode clears Row.Ext and each slot it may write before writing it,
// and writes no other slot. The runtime then hands Decode the previous
// record's row as it is, instead of clearing all of its slots with Row.Reset
// before each record; the slots no Decode writes keep the zeros of NewRow. A
// task asks once, when it starts (after New has projected the decoders), from
// its own goroutine.
type RowPreparer interface {
	PreparesRows() bool
}

// project tells each projecting decoder which columns its pipelines read.
func project(pipes []*Pipeline) error {
	type want struct {
		cols []string
		all  bool
	}
	byDec := map[Decoder]*want{}
	var order []Decoder
	for _, p := range pipes {
		w := byDec[p.Decoder]
		if w == nil {
			w = &want{}
			byDec[p.Decoder] = w
			order = append(order, p.Decoder)
		}
		cr, ok := p.Transform.(ColumnReader)
		if !ok {
			w.all = true
			continue
		}
		w.cols = append(w.cols, cr.Columns()...)
		if p.EventTime.Type != nil && p.EventTime.Path != "" {
			w.cols = append(w.cols, p.EventTime.Path)
		}
	}
	for _, d := range order {
		w := byDec[d]
		pr, ok := d.(Projector)
		if !ok || w.all {
			continue
		}
		slices.Sort(w.cols)
		if err := pr.Project(slices.Compact(w.cols)); err != nil {
			return fmt.Errorf("engine: project decoder: %w", err)
		}
	}
	return nil
}
