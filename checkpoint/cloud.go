package checkpoint

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
)

// bucket is one attempt of each operation of a cloud object store (GCS, S3,
// Azure Blob) on full object names, its errors classified into the
// package's sentinels (ErrExists, ErrNotFound, Permanent, transient). The
// cloud Stores differ only in their bucket; what they share (key checks,
// retries, the lost-response check of a create, error context) is
// cloudStore's.
type bucket interface {
	// create writes data at name only if no object is there (ErrExists
	// otherwise), with a checksum the service verifies before it creates
	// the object.
	create(ctx context.Context, name string, data []byte) error
	// read returns the object's bytes (ErrNotFound when there is none).
	read(ctx context.Context, name string) ([]byte, error)
	// list returns the names that start with prefix.
	list(ctx context.Context, prefix string) ([]string, error)
	// remove deletes the object; a missing one may be ErrNotFound.
	remove(ctx context.Context, name string) error
}

// cloudStore is a Store on a bucket, under a key prefix: every operation is
// retried by the store itself with its Backoff policy, on retryable errors
// only (the clients' own retries are turned off, so that there is one
// policy, in one place). It is safe for concurrent use if its bucket is.
type cloudStore struct {
	b      bucket
	prefix string // "" or ends with "/"
	retry  *retrier
}

func newCloudStore(b bucket, prefix string, cfg *config) cloudStore {
	return cloudStore{b: b, prefix: cleanPrefix(prefix), retry: cfg.retrier()}
}

// cleanPrefix trims slashes and ends a non-empty prefix with one.
func cleanPrefix(prefix string) string {
	prefix = strings.Trim(prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	return prefix
}

// Put implements Store. A create retried after a lost response may find its
// own object already there: Put then compares the bytes and succeeds if
// they are the same.
func (c *cloudStore) Put(ctx context.Context, key string, data []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	err := c.retry.do(ctx, "put", func(ctx context.Context, attempt int) error {
		err := c.b.create(ctx, c.prefix+key, data)
		if attempt > 0 && errors.Is(err, ErrExists) {
			// An earlier attempt may have created the object and lost
			// the response: if the object is ours, the Put succeeded.
			switch got, gerr := c.b.read(ctx, c.prefix+key); {
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

// Get implements Store.
func (c *cloudStore) Get(ctx context.Context, key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	var data []byte
	err := c.retry.do(ctx, "get", func(ctx context.Context, _ int) error {
		var err error
		data, err = c.b.read(ctx, c.prefix+key)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("checkpoint: get %s: %w", key, err)
	}
	return data, nil
}

// List implements Store.
func (c *cloudStore) List(ctx context.Context, prefix string) ([]string, error) {
	var names []string
	err := c.retry.do(ctx, "list", func(ctx context.Context, _ int) error {
		var err error
		names, err = c.b.list(ctx, c.prefix+prefix)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("checkpoint: list %q: %w", prefix, err)
	}
	for i, n := range names {
		names[i] = strings.TrimPrefix(n, c.prefix)
	}
	return names, nil
}

// Delete implements Store. Deleting a missing key succeeds: it may be gone
// by an attempt whose response was lost.
func (c *cloudStore) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	err := c.retry.do(ctx, "delete", func(ctx context.Context, _ int) error {
		if err := c.b.remove(ctx, c.prefix+key); !errors.Is(err, ErrNotFound) {
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("checkpoint: delete %s: %w", key, err)
	}
	return nil
}
