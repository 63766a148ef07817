package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Store holds immutable blobs under slash-separated keys. It is the seam
// between the checkpoint logic (Checkpointer) and a storage service; Dir and
// GCS implement it. Implementations are safe for concurrent use by many
// goroutines; data passed to Put and returned by Get belongs to the caller.
type Store interface {
	// Put creates the object key holding data, durably: once Put returns nil
	// the object survives a crash of this process and of the machine. If
	// key already exists Put fails with an error wrapping ErrExists and the
	// existing object is left untouched. Two concurrent Puts of one key:
	// exactly one succeeds.
	Put(ctx context.Context, key string, data []byte) error
	// Get returns the whole object, or an error wrapping ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, error)
	// List returns the keys that start with prefix, in no particular
	// order. Objects being written by an unfinished Put are not listed.
	List(ctx context.Context, prefix string) ([]string, error)
	// Delete removes key. Deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

var (
	// ErrExists is returned by Store.Put (and Checkpointer.Save) when the
	// object already exists: another writer created it first.
	ErrExists = errors.New("object already exists")
	// ErrNotFound is returned when an object or checkpoint does not exist.
	ErrNotFound = errors.New("object not found")
)

// checkKey rejects keys that are not clean relative slash-separated paths, so
// that a key means the same object in every store and never escapes a Dir.
func checkKey(key string) error {
	if key == "" {
		return fmt.Errorf("checkpoint: empty key")
	}
	for _, part := range strings.Split(key, "/") {
		if err := checkName(part); err != nil {
			return fmt.Errorf("checkpoint: key %q: %w", key, err)
		}
	}
	return nil
}

// checkName rejects a path element that is empty, "." or "..", contains a
// backslash or a control character, or starts with the temporary-file prefix.
func checkName(s string) error {
	switch {
	case s == "":
		return errors.New("empty path element")
	case s == "." || s == "..":
		return fmt.Errorf("path element %q", s)
	case strings.HasPrefix(s, tempPrefix):
		return fmt.Errorf("path element %q starts with %q, reserved for temporary files", s, tempPrefix)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == '\\' || r == '/' {
			return fmt.Errorf("path element %q holds %q", s, r)
		}
	}
	return nil
}
