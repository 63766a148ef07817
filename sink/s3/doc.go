// Package s3 is the Amazon S3 sink (and S3-compatible stores: MinIO, R2):
// rows become objects of JSON lines, CSV or Avro object container files,
// which close at max_object_bytes or max_object_age across many bundles.
//
//	sinks:
//	  - s3: {bucket: acme-export, prefix: denied/, region: eu-west-1,
//	         format: avro, codec: zstd, max_object_bytes: 64MiB, max_object_age: 5m}
//
// Naming, rolling, the writer state in the checkpoint and the delivery
// guarantee (exactly-once across crashes for a job whose replay produces the
// same rows, with the exceptions sink/object lists) are sink/object's, shared
// with the gcs and azblob sinks. This package holds the configuration and
// object.Store on a bucket.
//
// # Parts
//
// S3's multipart parts must be at least 5 MiB (all but the last), and a
// flush is usually far smaller, so each Flush stages its rows as a
// temporary object (one PutObject)
//
//	<parts_prefix><object key>/<writer nonce>-<part index>
//
// with parts_prefix "_sluice/parts/" by default. Finalizing reads the parts
// back in order and writes the object create-only (If-None-Match: *): with
// one PutObject when it is under 8 MiB, otherwise with a multipart upload of
// 8 MiB parts; then it deletes every object under the parts' prefix
// (DeleteObjects). The multipart upload lives only during the finalization;
// a crash in it leaves an incomplete upload for the bucket's
// AbortIncompleteMultipartUpload lifecycle rule, and the parts, which the
// next finalization uses again. The cost of the scheme is that each byte is
// uploaded twice and downloaded once. A crash between the object's creation
// and the deletion of its parts leaves parts that the next Resume removes;
// add a lifecycle rule expiring parts_prefix after a week for the rest.
//
// # Credentials and endpoints
//
// Clients are built by engine/cloud/s3conf, as the S3 checkpoint store's
// are: the AWS default chain (environment, shared config and profiles, web
// identity for IRSA on EKS, ECS and EC2 roles), region from the config or
// the chain (required unless an endpoint is given), and endpoint for
// S3-compatible stores (which implies path-style addressing). The tests run
// the real aws-sdk-go-v2 client against gofakes3, which enforces
// If-None-Match on PutObject.
//
// # Errors
//
// HTTP 400, 401, 403, 404 and NoSuchBucket are permanent
// (engine.Permanent); 412 is object.ErrExists; the rest are retried by the
// SDK and then by the engine's replay.
package s3
