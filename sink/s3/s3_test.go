package s3

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/cloud/s3conf"
	"github.com/sluicehq/sluice/engine/config"
	"github.com/sluicehq/sluice/sink/object"
	"github.com/sluicehq/sluice/sink/object/objecttest"
)

func startS3(t *testing.T) string {
	endpoint, _ := objecttest.StartS3(t, "export")
	return endpoint
}

// TestS3Sink runs the object sinks' checks (objecttest.Run) through the real
// aws-sdk-go-v2 client against gofakes3 over HTTP.
func TestS3Sink(t *testing.T) {
	endpoint := startS3(t)
	ctx := context.Background()
	reader, err := s3conf.Client(ctx, s3conf.Options{Endpoint: endpoint})
	if err != nil {
		t.Fatal(err)
	}
	objecttest.Run(t, objecttest.Backend{
		New: func(t *testing.T, prefix, format string, maxBytes int64, maxAge time.Duration) engine.ResumableSink {
			s, err := New(ctx, Config{Bucket: "export", Endpoint: endpoint,
				Layout: object.Layout{Prefix: prefix, Format: format, MaxObjectBytes: config.ByteSize(maxBytes), MaxObjectAge: maxAge}},
				objecttest.Schema, engine.SinkEnv{Job: "job", Pipeline: "pipe", Name: "s3/0"})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		List: func(t *testing.T, prefix string) []objecttest.Object {
			var out []objecttest.Object
			p := s3.NewListObjectsV2Paginator(reader, &s3.ListObjectsV2Input{Bucket: aws.String("export"), Prefix: aws.String(prefix)})
			for p.HasMorePages() {
				page, err := p.NextPage(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range page.Contents {
					got, err := reader.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("export"), Key: o.Key})
					if err != nil {
						t.Fatal(err)
					}
					b, _ := io.ReadAll(got.Body)
					got.Body.Close()
					out = append(out, objecttest.Object{Name: *o.Key, Data: b, Close: got.Metadata[object.MetaClose]})
				}
			}
			return out
		},
	})
}

// TestS3MultipartFinalize finalizes an object larger than S3's smallest part
// from many small parts: the multipart path.
func TestS3MultipartFinalize(t *testing.T) {
	endpoint := startS3(t)
	ctx := context.Background()
	c, err := s3conf.Client(ctx, s3conf.Options{Endpoint: endpoint})
	if err != nil {
		t.Fatal(err)
	}
	st := &store{c: c, bucket: "export", parts: DefaultPartsPrefix}
	var want []byte
	var ids []string
	chunk := make([]byte, 1<<20)
	for i := range 10 {
		for j := range chunk {
			chunk[j] = byte(i + j)
		}
		id := "aaaaaaaa-0000000" + string(rune('a'+i))
		if err := st.Stage(ctx, "big.jsonl", id, chunk); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		want = append(want, chunk...)
	}
	if err := st.Commit(ctx, "big.jsonl", ids, object.Meta{Rows: 10, Close: "size", ContentType: "application/x-ndjson"}); err != nil {
		t.Fatal(err)
	}
	rows, ok, err := st.Committed(ctx, "big.jsonl")
	if err != nil || !ok || rows != 10 {
		t.Fatalf("committed: %d %v %v", rows, ok, err)
	}
	got, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("export"), Key: aws.String("big.jsonl")})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(got.Body)
	if string(b) != string(want) {
		t.Fatalf("object of %d bytes differs from the %d staged", len(b), len(want))
	}
	if err := st.Commit(ctx, "big.jsonl", ids, object.Meta{Rows: 10}); err == nil {
		t.Fatal("a second commit of the same object succeeded; want ErrExists")
	}
}
