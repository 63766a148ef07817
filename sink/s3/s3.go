package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/cloud/s3conf"
	"github.com/sluicehq/sluice/engine/config"
	"github.com/sluicehq/sluice/sink/object"
)

// DefaultPartsPrefix is where parts are staged unless parts_prefix says.
const DefaultPartsPrefix = object.DefaultPartsPrefix

// minPart is S3's smallest multipart part (except the last); uploadPart is
// the part size the finalization uses.
const (
	minPart    = 5 << 20
	uploadPart = 8 << 20
)

// Config is the `s3:` sink of a pipeline.
type Config struct {
	Pos    config.Pos
	Bucket string `yaml:"bucket" required:"true"`
	// Layout holds prefix, format, codec, max_object_bytes and
	// max_object_age.
	object.Layout `yaml:",inline"`
	// PartsPrefix is where the parts of open objects are staged
	// (DefaultPartsPrefix).
	PartsPrefix string `yaml:"parts_prefix"`
	// Region overrides the AWS default chain's region.
	Region string `yaml:"region"`
	// Endpoint is the URL of an S3-compatible store (MinIO, R2); it implies
	// path-style addressing.
	Endpoint string `yaml:"endpoint"`
	// PathStyle addresses buckets as paths without an endpoint override.
	PathStyle bool `yaml:"path_style"`
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

// Destination is the bucket and prefix the sink writes under, "bucket/prefix":
// it names the sink by default and finds two sinks whose objects would share
// names.
func (c *Config) Destination() string { return c.Bucket + "/" + c.Prefix }

// Option configures New beyond its Config.
type Option func(*options)

type options struct {
	client *s3.Client
}

// WithClient uses c (default: a client s3conf builds from the Config's
// region, endpoint and path_style).
func WithClient(c *s3.Client) Option { return func(o *options) { o.client = c } }

// Sink writes rows to objects of a bucket. It implements
// engine.ResumableSink.
type Sink struct {
	*object.Sink
	client *s3.Client
}

// New builds the S3 sink of cfg for rows of schema.
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
		c, err := s3conf.Client(ctx, s3conf.Options{Region: cfg.Region, Endpoint: cfg.Endpoint, PathStyle: cfg.PathStyle})
		if err != nil {
			return nil, fmt.Errorf("s3 sink: %w", err)
		}
		s.client = c
	}
	st := &store{c: s.client, bucket: cfg.Bucket, parts: cfg.PartsPrefix}
	var err error
	if s.Sink, err = object.New(cfg.Layout.Options("s3"), st, schema, env); err != nil {
		return nil, fmt.Errorf("s3 sink: %w", err)
	}
	return s, nil
}

// store is object.Store on an S3 bucket: parts are temporary objects under
// the parts prefix; finalizing copies them into the object.
type store struct {
	c      *s3.Client
	bucket string
	parts  string
}

func (s *store) partKey(name, id string) string { return s.parts + name + "/" + id }

func (s *store) Stage(ctx context.Context, name, id string, data []byte) error {
	_, err := s.c.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: aws.String(s.partKey(name, id)),
		Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data)))})
	return classify(err)
}

func (s *store) Commit(ctx context.Context, name string, ids []string, meta object.Meta) error {
	if _, ok, err := s.Committed(ctx, name); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("%s: %w", name, object.ErrExists)
	}
	var whole []byte
	var mpu *string
	var done []types.CompletedPart
	abort := func() {
		if mpu != nil {
			s.c.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{Bucket: &s.bucket, Key: &name, UploadId: mpu})
		}
	}
	flushPart := func() error {
		if mpu == nil {
			out, err := s.c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &s.bucket, Key: &name,
				ContentType: &meta.ContentType, Metadata: meta.Metadata()})
			if err != nil {
				return classify(err)
			}
			mpu = out.UploadId
		}
		n := int32(len(done) + 1)
		out, err := s.c.UploadPart(ctx, &s3.UploadPartInput{Bucket: &s.bucket, Key: &name, UploadId: mpu, PartNumber: &n,
			Body: bytes.NewReader(whole), ContentLength: aws.Int64(int64(len(whole)))})
		if err != nil {
			return classify(err)
		}
		done = append(done, types.CompletedPart{ETag: out.ETag, PartNumber: &n})
		whole = whole[:0]
		return nil
	}
	for _, id := range ids {
		out, err := s.c.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(s.partKey(name, id))})
		if err != nil {
			abort()
			return classify(err)
		}
		whole, err = appendAll(whole, out.Body)
		out.Body.Close()
		if err != nil {
			abort()
			return err
		}
		if len(whole) >= uploadPart {
			if err := flushPart(); err != nil {
				abort()
				return err
			}
		}
	}
	if mpu == nil {
		// Small enough for one request.
		_, err := s.c.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: &name, Body: bytes.NewReader(whole),
			ContentLength: aws.Int64(int64(len(whole))), ContentType: &meta.ContentType, Metadata: meta.Metadata(),
			IfNoneMatch: aws.String("*")})
		if err != nil {
			return classify(err)
		}
	} else {
		if len(whole) > 0 {
			if err := flushPart(); err != nil {
				abort()
				return err
			}
		}
		_, err := s.c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &s.bucket, Key: &name, UploadId: mpu,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: done}, IfNoneMatch: aws.String("*")})
		if err != nil {
			abort()
			return classify(err)
		}
	}
	// The object is whole; leftover parts only cost storage.
	_ = s.Abandon(ctx, name)
	return nil
}

func appendAll(dst []byte, r io.Reader) ([]byte, error) {
	var b bytes.Buffer
	b.Write(dst)
	if _, err := b.ReadFrom(r); err != nil {
		return dst, fmt.Errorf("read part: %w", err)
	}
	return b.Bytes(), nil
}

func (s *store) Committed(ctx context.Context, name string) (int64, bool, error) {
	out, err := s.c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &name})
	if err != nil {
		var nf *types.NotFound
		var re *smithyhttp.ResponseError
		if errors.As(err, &nf) || errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound {
			return 0, false, nil
		}
		return 0, false, classify(err)
	}
	rows, err := strconv.ParseInt(out.Metadata[object.MetaRows], 10, 64)
	if err != nil {
		return 0, true, engine.Permanent(fmt.Errorf("object %s has no %s metadata: not written by this sink", name, object.MetaRows))
	}
	return rows, true, nil
}

func (s *store) Abandon(ctx context.Context, name string) error {
	p := s3.NewListObjectsV2Paginator(s.c, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(s.parts + name + "/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return classify(err)
		}
		if len(page.Contents) == 0 {
			continue
		}
		var ids []types.ObjectIdentifier
		for _, o := range page.Contents {
			ids = append(ids, types.ObjectIdentifier{Key: o.Key})
		}
		if _, err := s.c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: &s.bucket, Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}}); err != nil {
			return classify(err)
		}
	}
	return nil
}

// classify marks what retrying cannot fix (bad request, credentials,
// permission, a missing bucket) permanent, and a failed create-only write
// object.ErrExists.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		switch re.HTTPStatusCode() {
		case http.StatusPreconditionFailed, http.StatusConflict:
			return fmt.Errorf("%w: %w", object.ErrExists, err)
		case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
			return engine.Permanent(err)
		}
	}
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "NoSuchBucket" {
		return engine.Permanent(err)
	}
	return err
}
