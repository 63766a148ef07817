package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
)

// GCS is a Store in a Google Cloud Storage bucket, under a key prefix.
//
// Put is a single-request upload with the DoesNotExist precondition (GCS's
// ifGenerationMatch=0) and the object's CRC-32C, which GCS verifies before it
// creates the object: an object is whole, checked and never overwritten.
// Every request is retried by the store itself, with the Backoff policy, on
// retryable errors only (the client library's own retries are turned off for
// the store's handles so that there is one policy, in one place). A Put
// retried after a lost response may find its own object already there: it
// then compares the bytes and succeeds if they are the same.
type GCS struct {
	cloudStore
	bucket *storage.BucketHandle
}

// NewGCS returns a Store in bucket under prefix (a leading or trailing slash
// is ignored) using client, which the caller keeps and closes.
// Of the options, WithBackoff and WithLogger apply.
func NewGCS(client *storage.Client, bucket, prefix string, opts ...Option) *GCS {
	return newGCS(client, bucket, prefix, newConfig(opts))
}

func newGCS(client *storage.Client, bucket, prefix string, cfg *config) *GCS {
	g := &GCS{bucket: client.Bucket(bucket).Retryer(storage.WithPolicy(storage.RetryNever))}
	g.cloudStore = newCloudStore(g, prefix, cfg)
	return g
}

func (g *GCS) create(ctx context.Context, name string, data []byte) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // a Writer whose Close was not reached is abandoned by cancelling its context
	w := g.bucket.Object(name).If(storage.Conditions{DoesNotExist: true}).NewWriter(ctx)
	w.ChunkSize = 0 // one request: no resumable session to leak or resume
	w.ContentType = "application/octet-stream"
	w.CRC32C, w.SendCRC32C = crc32.Checksum(data, castagnoli()), true
	if _, err := w.Write(data); err != nil {
		return classify(err)
	}
	return classify(w.Close())
}

func (g *GCS) read(ctx context.Context, name string) ([]byte, error) {
	r, err := g.bucket.Object(name).NewReader(ctx)
	if err != nil {
		return nil, classify(err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, classify(err)
	}
	return data, nil
}

func (g *GCS) list(ctx context.Context, prefix string) ([]string, error) {
	var names []string
	q := &storage.Query{Prefix: prefix, Projection: storage.ProjectionNoACL}
	if err := q.SetAttrSelection([]string{"Name"}); err != nil {
		return nil, err
	}
	it := g.bucket.Objects(ctx, q)
	for {
		attrs, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return names, nil
		}
		if err != nil {
			return nil, classify(err)
		}
		names = append(names, attrs.Name)
	}
}

func (g *GCS) remove(ctx context.Context, name string) error {
	return classify(g.bucket.Object(name).Delete(ctx))
}

// classify maps the storage client's errors to the package's sentinels,
// keeping the original in the chain for isRetryable and for the message.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, storage.ErrObjectNotExist) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	if ae := (*googleapi.Error)(nil); errors.As(err, &ae) {
		switch ae.Code {
		case http.StatusPreconditionFailed:
			return fmt.Errorf("%w: %w", ErrExists, err)
		case http.StatusNotFound:
			return fmt.Errorf("%w: %w", ErrNotFound, err)
		}
	}
	return err
}
