// Package s3conf builds Amazon S3 clients the one way sluice does, for every
// part that talks to S3 (the s3 sink, the S3 checkpoint store), the way
// AWS's own tools do: credentials and region from the AWS default chain
// (environment, shared config and credentials files and profile, web
// identity for IRSA on EKS, EKS Pod Identity, ECS and EC2 roles), then the
// job's region, endpoint and path-style overrides. AWS_ENDPOINT_URL_S3 also
// sets the endpoint, as it does for every AWS SDK. It sits under engine/ so
// that sinks and checkpoint stores can share it without importing each
// other; it imports nothing of sluice.
package s3conf

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Options are the settings a job file may give; zero values leave the
// default chain's choice.
type Options struct {
	// Region overrides AWS_REGION and the profile's region. With neither
	// and no Endpoint, Client fails: requests to a bucket in another region
	// would fail later with a redirect that says less.
	Region string
	// Endpoint is the base URL of an S3-compatible store
	// ("http://127.0.0.1:9000"); empty for AWS.
	Endpoint string
	// PathStyle addresses buckets as a path (endpoint/bucket/key), as most
	// S3-compatible stores need; it is implied by Endpoint.
	PathStyle bool
}

// Client returns an S3 client for o.
func Client(ctx context.Context, o Options) (*s3.Client, error) {
	var lo []func(*config.LoadOptions) error
	if o.Region != "" {
		lo = append(lo, config.WithRegion(o.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, lo...)
	if err != nil {
		return nil, fmt.Errorf("s3: aws configuration: %w", err)
	}
	if cfg.Region == "" {
		if o.Endpoint == "" {
			return nil, errors.New("s3: no region: set the region or AWS_REGION")
		}
		// S3-compatible stores sign with some region, and most accept this one.
		cfg.Region = "us-east-1"
	}
	return s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
			so.UsePathStyle = true
		}
		if o.PathStyle {
			so.UsePathStyle = true
		}
		// Only ask for checksums where the service requires them:
		// S3-compatible stores do not all support the newer trailers.
		so.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		so.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	}), nil
}
