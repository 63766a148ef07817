package azblob

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/config"
	"github.com/sluicehq/sluice/sink/object"
	"github.com/sluicehq/sluice/sink/object/objecttest"
)

// TestAzblobSink runs the object sinks' checks (objecttest.Run) through the
// real azblob client against Azurite.
func TestAzblobSink(t *testing.T) {
	reader := objecttest.StartAzurite(t, "export")
	ctx := context.Background()
	objecttest.Run(t, objecttest.Backend{
		New: func(t *testing.T, prefix, format string, maxBytes int64, maxAge time.Duration) engine.ResumableSink {
			s, err := New(ctx, Config{Container: "export",
				Layout: object.Layout{Prefix: prefix, Format: format, MaxObjectBytes: config.ByteSize(maxBytes), MaxObjectAge: maxAge}},
				objecttest.Schema, engine.SinkEnv{Job: "job", Pipeline: "pipe", Name: "azblob/0"})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		List: func(t *testing.T, prefix string) []objecttest.Object {
			var out []objecttest.Object
			p := reader.NewListBlobsFlatPager("export", &azblob.ListBlobsFlatOptions{Prefix: &prefix, Include: container.ListBlobsInclude{Metadata: true}})
			for p.More() {
				page, err := p.NextPage(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, b := range page.Segment.BlobItems {
					got, err := reader.DownloadStream(ctx, "export", *b.Name, nil)
					if err != nil {
						t.Fatal(err)
					}
					data, _ := io.ReadAll(got.Body)
					got.Body.Close()
					var closeReason string
					for k, v := range got.Metadata {
						if strings.EqualFold(k, metaKey(object.MetaClose)) && v != nil {
							closeReason = *v
						}
					}
					out = append(out, objecttest.Object{Name: *b.Name, Data: data, Close: closeReason})
				}
			}
			return out
		},
	})
}
