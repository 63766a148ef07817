package stdout

import (
	"bytes"
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluicehq/sluice/engine"
)

func TestStdout(t *testing.T) {
	schema := engine.MustSchema(&engine.Type{Kind: engine.KindRecord, Name: "r", Fields: []engine.Field{
		{Name: "a", Type: &engine.Type{Kind: engine.KindLong}},
		{Name: "b", Type: &engine.Type{Kind: engine.KindString}},
	}})
	for _, tc := range []struct{ format, want string }{
		{"json", "{\"a\":1,\"b\":\"x,y\"}\n{\"a\":2,\"b\":\"x,y\"}\n"},
		{"csv", "a,b\r\n1,\"x,y\"\r\n2,\"x,y\"\r\n"},
	} {
		t.Run(tc.format, func(t *testing.T) {
			ctx := context.Background()
			var out bytes.Buffer
			s, err := New(ctx, Config{Format: tc.format}, schema, engine.SinkEnv{}, WithOutput(&out))
			if err != nil {
				t.Fatal(err)
			}
			w, _ := s.Open(ctx, engine.TaskID{Topic: "t"})
			row := engine.NewRow(2)
			for i := int64(1); i <= 2; i++ {
				row.SetInt(0, i)
				row.SetStr(1, "x,y")
				w.Write(row)
				if err := w.Flush(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if diff := cmp.Diff(tc.want, out.String()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
