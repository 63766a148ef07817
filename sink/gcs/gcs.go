package gcs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"cloud.google.com/go/storage"
	"golang.org/x/sync/errgroup"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/config"
	"github.com/sluicehq/sluice/sink/object"
)

// Defaults of Config.
const (
	DefaultMaxObjectBytes = object.DefaultMaxObjectBytes
	DefaultMaxObjectAge   = object.DefaultMaxObjectAge
	DefaultPartsPrefix    = object.DefaultPartsPrefix
	// maxCompose is how many sources one GCS compose request takes.
	maxCompose = 32
)

// Config is the `gcs:` sink of a pipeline.
type Config struct {
	Pos    config.Pos
	Bucket string `yaml:"bucket" required:"true"`
	// Layout holds prefix, format, codec, max_object_bytes and
	// max_object_age.
	object.Layout `yaml:",inline"`
	// PartsPrefix is where the parts of open objects are staged
	// (DefaultPartsPrefix); it should not lie below Prefix, so that readers
	// of Prefix see finalized objects only.
	PartsPrefix string `yaml:"parts_prefix"`
}

// Validate reports settings that cannot work, at their positions.
func (c *Config) Validate() error {
	errs := c.Layout.Check(c.Pos)
	if c.Bucket == "" {
		errs = append(errs, c.Pos.Key("bucket").Errorf("bucket must not be empty"))
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// Option configures New beyond its Config.
type Option func(*options)

type options struct {
	client *storage.Client
}

// WithClient uses c, which the caller closes (default: a client New makes
// with storage.NewClient, which honours STORAGE_EMULATOR_HOST, and Close
// closes).
func WithClient(c *storage.Client) Option { return func(o *options) { o.client = c } }

// Sink writes rows to objects of a bucket. It implements
// engine.ResumableSink.
type Sink struct {
	*object.Sink
	client    *storage.Client
	ownClient bool
}

// New builds the GCS sink of cfg for rows of schema.
func New(ctx context.Context, cfg Config, schema *engine.Schema, env engine.SinkEnv, opts ...Option) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.PartsPrefix == "" {
		cfg.PartsPrefix = DefaultPartsPrefix
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	s := &Sink{client: o.client}
	if s.client == nil {
		// JSON reads: the XML API's reads do not reach an emulator named by
		// STORAGE_EMULATOR_HOST. ctx may end before the sink does (a
		// worker's ends on SIGTERM, and the drain that follows still
		// flushes and finalizes objects): the client must not keep it. The
		// default credentials (cloud.google.com/go/auth) take each request's
		// context, but when they cannot be found the client falls back on
		// golang.org/x/oauth2 credentials, some of which (user credentials,
		// external accounts) refresh their token with the context they
		// were built with; so the client is built with one that never
		// ends.
		c, err := storage.NewClient(context.WithoutCancel(ctx), storage.WithJSONReads())
		if err != nil {
			return nil, fmt.Errorf("gcs sink: %w", err)
		}
		s.client, s.ownClient = c, true
	}
	st := &store{bucket: s.client.Bucket(cfg.Bucket), parts: cfg.PartsPrefix}
	var err error
	s.Sink, err = object.New(cfg.Layout.Options("gcs"), st, schema, env)
	if err != nil {
		s.Close(ctx)
		return nil, fmt.Errorf("gcs sink: %w", err)
	}
	return s, nil
}

// Close closes the client if New made it.
func (s *Sink) Close(ctx context.Context) error {
	if s.ownClient && s.client != nil {
		c := s.client
		s.client = nil
		if err := c.Close(); err != nil {
			return fmt.Errorf("gcs sink: close: %w", err)
		}
	}
	return nil
}

// store is object.Store on a GCS bucket: parts are temporary objects under
// the parts prefix, composed into the object when it is finalized.
type store struct {
	bucket *storage.BucketHandle
	parts  string
}

func (s *store) partName(name, id string) string { return s.parts + name + "/" + id }

func (s *store) Stage(ctx context.Context, name, id string, data []byte) error {
	// Staging replaces the part of the same name, so it is safe to retry.
	obj := s.bucket.Object(s.partName(name, id)).Retryer(storage.WithPolicy(storage.RetryAlways))
	ow := obj.NewWriter(ctx)
	ow.ChunkSize = 0 // one request: parts are one flush's rows
	if _, err := ow.Write(data); err != nil {
		_ = ow.Close()
		return classify(err)
	}
	return classify(ow.Close())
}

func (s *store) Commit(ctx context.Context, name string, ids []string, meta object.Meta) error {
	srcs := make([]*storage.ObjectHandle, len(ids))
	for i, id := range ids {
		srcs[i] = s.bucket.Object(s.partName(name, id))
	}
	// More parts than one compose takes are composed in rounds into
	// intermediate objects beside the parts.
	for round := 0; len(srcs) > maxCompose; round++ {
		var next []*storage.ObjectHandle
		for i := 0; i < len(srcs); i += maxCompose {
			group := srcs[i:min(i+maxCompose, len(srcs))]
			if len(group) == 1 {
				next = append(next, group[0])
				continue
			}
			dst := s.bucket.Object(s.partName(name, "c"+strconv.Itoa(round)+"-"+strconv.Itoa(i/maxCompose)))
			if _, err := dst.Retryer(storage.WithPolicy(storage.RetryAlways)).ComposerFrom(group...).Run(ctx); err != nil {
				return classify(err)
			}
			next = append(next, dst)
		}
		srcs = next
	}
	// DoesNotExist: an object is never replaced, and a retried compose
	// whose first attempt succeeded reports ErrExists.
	c := s.bucket.Object(name).If(storage.Conditions{DoesNotExist: true}).
		Retryer(storage.WithPolicy(storage.RetryIdempotent)).ComposerFrom(srcs...)
	c.ContentType = meta.ContentType
	c.Metadata = meta.Metadata()
	if _, err := c.Run(ctx); err != nil {
		return classify(err)
	}
	// The object is whole; leftover parts only cost storage (a crash here
	// leaves them to the next Resume, or to a lifecycle rule).
	_ = s.Abandon(ctx, name)
	return nil
}

func (s *store) Committed(ctx context.Context, name string) (int64, bool, error) {
	a, err := s.bucket.Object(name).Attrs(ctx)
	if errors.Is(err, storage.ErrObjectNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, classify(err)
	}
	rows, err := strconv.ParseInt(a.Metadata[object.MetaRows], 10, 64)
	if err != nil {
		return 0, true, engine.Permanent(fmt.Errorf("object %s has no %s metadata: not written by this sink", name, object.MetaRows))
	}
	return rows, true, nil
}

func (s *store) Abandon(ctx context.Context, name string) error {
	it := s.bucket.Objects(ctx, &storage.Query{Prefix: s.parts + name + "/"})
	eg, gctx := errgroup.WithContext(ctx)
	eg.SetLimit(8)
	for {
		a, err := it.Next()
		if err == iterator.Done {
			break
		}
		if err != nil {
			return errors.Join(classify(err), eg.Wait())
		}
		eg.Go(func() error {
			err := s.bucket.Object(a.Name).Delete(gctx)
			if errors.Is(err, storage.ErrObjectNotExist) {
				return nil
			}
			return classify(err)
		})
	}
	return eg.Wait()
}

// classify marks what retrying cannot fix (bad request, credentials,
// permission, a missing bucket) permanent, and a failed precondition as
// object.ErrExists.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		switch ge.Code {
		case http.StatusPreconditionFailed:
			return fmt.Errorf("%w: %w", object.ErrExists, err)
		case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
			return engine.Permanent(err)
		}
	}
	if errors.Is(err, storage.ErrBucketNotExist) {
		return engine.Permanent(err)
	}
	return err
}
