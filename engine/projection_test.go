package engine

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

type projDecoder struct {
	got   [][]string
	calls int
}

func (d *projDecoder) Schema() *Schema                    { return nil }
func (d *projDecoder) Decode(rec *Record, row *Row) error { return nil }
func (d *projDecoder) Project(cols []string) error {
	d.calls++
	d.got = append(d.got, cols)
	return nil
}

type colTransform struct{ cols []string }

func (t colTransform) Output() *Schema                 { return nil }
func (t colTransform) Eval(in, out *Row) (bool, error) { return true, nil }
func (t colTransform) Columns() []string               { return t.cols }

type opaqueTransform struct{}

func (opaqueTransform) Output() *Schema                 { return nil }
func (opaqueTransform) Eval(in, out *Row) (bool, error) { return true, nil }

// TestProjectUnion: a decoder shared by pipelines is projected once on the
// union of their columns and event times; one shared with a transform that
// does not say what it reads is not projected.
func TestProjectUnion(t *testing.T) {
	shared, opaque := &projDecoder{}, &projDecoder{}
	ts := Column{Path: "time_generated", Type: &Type{Kind: KindLong, Logical: TimestampMicros}, Slot: 3}
	pipes := []*Pipeline{
		{Name: "a", Decoder: shared, Transform: colTransform{[]string{"src_ip", "action"}}, EventTime: ts},
		{Name: "b", Decoder: shared, Transform: colTransform{[]string{"action", "dst_ip"}}, EventTime: Column{Slot: -1}},
		{Name: "c", Decoder: opaque, Transform: colTransform{[]string{"app"}}},
		{Name: "d", Decoder: opaque, Transform: opaqueTransform{}},
	}
	if err := project(pipes); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][]string{{"action", "dst_ip", "src_ip", "time_generated"}}, shared.got); diff != "" {
		t.Errorf("shared decoder projection (-want +got):\n%s", diff)
	}
	if opaque.calls != 0 {
		t.Errorf("a decoder read by an opaque transform was projected on %v", opaque.got)
	}
}
