package checkpoint

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/cloud/s3conf"
)

// S3 is a Store in an Amazon S3 bucket, or in an S3-compatible one (MinIO,
// Cloudflare R2), under a key prefix.
//
// Put is one PutObject with If-None-Match: * (S3's conditional write: the
// object is created only if the key is free, else 412) and the object's
// CRC-32C, which S3 verifies before it creates the object; what Get returns
// is checked by the format's own checksums (see Get). As with GCS, the
// store itself retries with the Backoff policy (the SDK's own retries are
// turned off for the store's requests), and a Put retried after a lost
// response that finds its own bytes at the key succeeds. S3 answers 409
// ConditionalRequestConflict when two conditional writes of one key overlap;
// that is retried, and the retry then finds the winner's object (412).
type S3 struct {
	cloudStore
	client *s3.Client
	bucket string
}

// NewS3 returns a Store in bucket under prefix (a leading or trailing slash
// is ignored) using client. Of the options, WithBackoff and WithLogger apply.
func NewS3(client *s3.Client, bucket, prefix string, opts ...Option) *S3 {
	return newS3(client, bucket, prefix, newConfig(opts))
}

func newS3(client *s3.Client, bucket, prefix string, cfg *config) *S3 {
	s := &S3{client: client, bucket: bucket}
	s.cloudStore = newCloudStore(s, prefix, cfg)
	return s
}

// noSDKRetries turns the SDK's retries off for one request: the store's
// retrier is the one policy.
func noSDKRetries(o *s3.Options) { o.Retryer = aws.NopRetryer{} }

func (s *S3) create(ctx context.Context, name string, data []byte) error {
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], crc32.Checksum(data, castagnoli()))
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:         aws.String(s.bucket),
		Key:            aws.String(name),
		Body:           bytes.NewReader(data),
		ContentLength:  aws.Int64(int64(len(data))),
		ContentType:    aws.String("application/octet-stream"),
		IfNoneMatch:    aws.String("*"),
		ChecksumCRC32C: aws.String(base64.StdEncoding.EncodeToString(sum[:])),
	}, noSDKRetries)
	return classifyS3(err)
}

func (s *S3) read(ctx context.Context, name string) ([]byte, error) {
	// The SDK's check of S3's stored checksum is off: it fails a read
	// whose bytes do not match with an error that cannot tell damage on the
	// way (worth a retry) from damage at rest (a corrupt checkpoint, to be
	// skipped). What the store returns is checked end to end by the
	// format's own CRC-32C and SHA-256 instead.
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(name),
	}, noSDKRetries, func(o *s3.Options) {
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	if err != nil {
		return nil, classifyS3(err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, classifyS3(err)
	}
	return data, nil
}

func (s *S3) list(ctx context.Context, prefix string) ([]string, error) {
	var names []string
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket),
		Prefix: aws.String(prefix),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx, noSDKRetries)
		if err != nil {
			return nil, classifyS3(err)
		}
		for _, o := range page.Contents {
			names = append(names, aws.ToString(o.Key))
		}
	}
	return names, nil
}

// remove deletes the object; S3 answers a deletion of a missing key with
// success.
func (s *S3) remove(ctx context.Context, name string) error {
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(name),
	}, noSDKRetries)
	return classifyS3(err)
}

// classifyS3 maps the SDK's errors to the package's sentinels, keeping the
// original in the chain for isRetryable and for the message.
func classifyS3(err error) error {
	if err == nil {
		return nil
	}
	code := ""
	if ae := smithy.APIError(nil); errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	switch status := httpStatus(err); {
	case code == "NoSuchBucket":
		return engine.Permanent(err)
	case status == http.StatusPreconditionFailed:
		return fmt.Errorf("%w: %w", ErrExists, err)
	case status == http.StatusNotFound:
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case status == http.StatusConflict && code == "ConditionalRequestConflict",
		status == http.StatusBadRequest && (code == "RequestTimeout" || code == "BadDigest" || code == "InvalidChecksum"):
		// Another conditional write of the key was in flight (the retry
		// finds its object, 412, or the key free), the connection idled,
		// or the bytes were damaged on the way in: send them again.
		return fmt.Errorf("%w: %w", errTransient, err)
	case status == http.StatusBadRequest, status == http.StatusUnauthorized, status == http.StatusForbidden:
		return engine.Permanent(err)
	}
	return err
}

// parseS3Params reads the query parameters an s3:// store URL may carry;
// the client is built from them by engine/cloud/s3conf, as the s3 sink's is.
func parseS3Params(q url.Values) (s3conf.Options, error) {
	var p s3conf.Options
	for k, vs := range q {
		v := vs[len(vs)-1]
		switch k {
		case "region":
			p.Region = v
		case "endpoint":
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return p, fmt.Errorf("endpoint %q: want http://host:port or https://host", v)
			}
			p.Endpoint = v
		case "path_style":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return p, fmt.Errorf("path_style %q: want true or false", v)
			}
			p.PathStyle = b
		default:
			return p, fmt.Errorf("unknown parameter %q (want region, endpoint or path_style)", k)
		}
	}
	return p, nil
}
