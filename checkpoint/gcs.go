package checkpoint

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"strings"

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
	bucket *storage.BucketHandle
	prefix string // "" or ends with "/"
	retry  *retrier
}

// NewGCS returns a Store in bucket under prefix (a leading or trailing slash
// is ignored) using client, which the caller keeps and closes.
// Of the options, WithBackoff and WithLogger apply.
func NewGCS(client *storage.Client, bucket, prefix string, opts ...Option) *GCS {
	return newGCS(client, bucket, prefix, newConfig(opts))
}

func newGCS(client *storage.Client, bucket, prefix string, cfg *config) *GCS {
	return &GCS{
		bucket: client.Bucket(bucket).Retryer(storage.WithPolicy(storage.RetryNever)),
		prefix: cleanPrefix(prefix),
		retry:  cfg.retrier(),
	}
}

// Put implements Store.
func (g *GCS) Put(ctx context.Context, key string, data []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	sum := crc32.Checksum(data, castagnoli())
	err := g.retry.do(ctx, "put", func(ctx context.Context, attempt int) error {
		err := g.put(ctx, key, data, sum)
		if attempt > 0 && errors.Is(err, ErrExists) {
			// An earlier attempt may have created the object and lost
			// the response: if the object is ours, the Put succeeded.
			switch got, gerr := g.get(ctx, key); {
			case gerr == nil && bytes.Equal(got, data):
				return nil
			case isRetryable(gerr): // cannot tell yet whose it is
				return gerr
			}
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("checkpoint: put %s: %w", key, err)
	}
	return nil
}

func (g *GCS) put(ctx context.Context, key string, data []byte, sum uint32) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // a Writer whose Close was not reached is abandoned by cancelling its context
	w := g.bucket.Object(g.prefix + key).If(storage.Conditions{DoesNotExist: true}).NewWriter(ctx)
	w.ChunkSize = 0 // one request: no resumable session to leak or resume
	w.ContentType = "application/octet-stream"
	w.CRC32C, w.SendCRC32C = sum, true
	if _, err := w.Write(data); err != nil {
		return classify(err)
	}
	return classify(w.Close())
}

// Get implements Store.
func (g *GCS) Get(ctx context.Context, key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	var data []byte
	err := g.retry.do(ctx, "get", func(ctx context.Context, _ int) error {
		var err error
		data, err = g.get(ctx, key)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("checkpoint: get %s: %w", key, err)
	}
	return data, nil
}

func (g *GCS) get(ctx context.Context, key string) ([]byte, error) {
	r, err := g.bucket.Object(g.prefix + key).NewReader(ctx)
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

// List implements Store.
func (g *GCS) List(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	err := g.retry.do(ctx, "list", func(ctx context.Context, _ int) error {
		keys = keys[:0]
		q := &storage.Query{Prefix: g.prefix + prefix, Projection: storage.ProjectionNoACL}
		if err := q.SetAttrSelection([]string{"Name"}); err != nil {
			return err
		}
		it := g.bucket.Objects(ctx, q)
		for {
			attrs, err := it.Next()
			if errors.Is(err, iterator.Done) {
				return nil
			}
			if err != nil {
				return classify(err)
			}
			keys = append(keys, strings.TrimPrefix(attrs.Name, g.prefix))
		}
	})
	if err != nil {
		return nil, fmt.Errorf("checkpoint: list %q: %w", prefix, err)
	}
	return keys, nil
}

// Delete implements Store.
func (g *GCS) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	err := g.retry.do(ctx, "delete", func(ctx context.Context, _ int) error {
		err := classify(g.bucket.Object(g.prefix + key).Delete(ctx))
		if errors.Is(err, ErrNotFound) { // gone, perhaps by an attempt whose response was lost
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("checkpoint: delete %s: %w", key, err)
	}
	return nil
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
