package checkpoint

import (
	"bytes"
	"context"
	"crypto/md5"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/cloud/azconf"
)

// Azure is a Store in an Azure Blob Storage container, under a key prefix.
//
// Put is one Put Blob (a block blob in a single request) with
// If-None-Match: *, so Azure creates the blob only if the name is free
// (409 BlobAlreadyExists otherwise), and with the MD5 of the bytes, which
// Azure verifies before it creates the blob and keeps as its Content-MD5;
// Get checks what it reads against it (and the format's own checksums check
// it again). The store itself retries with the
// Backoff policy (the SDK's retries are turned off), and a Put retried after a
// lost response that finds its own bytes at the key succeeds.
type Azure struct {
	cloudStore
	container *container.Client
}

// NewAzure returns a Store in the container client names, under prefix (a
// leading or trailing slash is ignored). Build the client with retries off
// (policy.RetryOptions{MaxRetries: -1}) so that the store's policy is the
// only one. Of the options, WithBackoff and WithLogger apply.
func NewAzure(client *container.Client, prefix string, opts ...Option) *Azure {
	return newAzure(client, prefix, newConfig(opts))
}

func newAzure(client *container.Client, prefix string, cfg *config) *Azure {
	a := &Azure{container: client}
	a.cloudStore = newCloudStore(a, prefix, cfg)
	return a
}

func (a *Azure) create(ctx context.Context, name string, data []byte) error {
	sum := md5.Sum(data)
	_, err := a.container.NewBlockBlobClient(name).Upload(ctx, streaming.NopCloser(bytes.NewReader(data)), &blockblob.UploadOptions{
		HTTPHeaders: &blob.HTTPHeaders{
			BlobContentType: new("application/octet-stream"),
			BlobContentMD5:  sum[:],
		},
		TransactionalValidation: blob.TransferValidationTypeMD5(sum[:]),
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{
			IfNoneMatch: new(azcore.ETagAny),
		}},
	})
	return classifyAzure(err)
}

// read reads the blob and checks it against its Content-MD5. Bytes that do
// not match are read once more at once: a second mismatch is damage at rest,
// reported as corruption (so that LoadLatest skips the checkpoint) rather
// than as a failure to retry.
func (a *Azure) read(ctx context.Context, name string) ([]byte, error) {
	for try := 0; ; try++ {
		resp, err := a.container.NewBlobClient(name).DownloadStream(ctx, nil)
		if err != nil {
			return nil, classifyAzure(err)
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, classifyAzure(err)
		}
		want := resp.ContentMD5
		if got := md5.Sum(data); len(want) != md5.Size || bytes.Equal(got[:], want) {
			return data, nil
		}
		if try > 0 {
			return nil, &CorruptError{Key: strings.TrimPrefix(name, a.prefix), Field: "blob", Reason: "contents do not match the blob's Content-MD5"}
		}
	}
}

func (a *Azure) list(ctx context.Context, prefix string) ([]string, error) {
	var names []string
	p := a.container.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: new(prefix)})
	for p.More() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, classifyAzure(err)
		}
		for _, item := range page.Segment.BlobItems {
			if item.Name != nil {
				names = append(names, *item.Name)
			}
		}
	}
	return names, nil
}

func (a *Azure) remove(ctx context.Context, name string) error {
	_, err := a.container.NewBlobClient(name).Delete(ctx, nil)
	return classifyAzure(err)
}

// classifyAzure maps the SDK's errors to the package's sentinels, keeping
// the original in the chain for isRetryable and for the message.
func classifyAzure(err error) error {
	if err == nil {
		return nil
	}
	switch status := httpStatus(err); {
	case bloberror.HasCode(err, bloberror.ContainerNotFound):
		return engine.Permanent(err)
	case bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet):
		return fmt.Errorf("%w: %w", ErrExists, err)
	case bloberror.HasCode(err, bloberror.BlobNotFound), status == http.StatusNotFound:
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case bloberror.HasCode(err, bloberror.MD5Mismatch):
		// The bytes were damaged on the way in: send them again.
		return fmt.Errorf("%w: %w", errTransient, err)
	case status == http.StatusBadRequest, status == http.StatusUnauthorized, status == http.StatusForbidden:
		return engine.Permanent(err)
	}
	return err
}

// parseAzureParams reads the query parameters an azblob:// store URL may
// carry; the client is built from them by engine/cloud/azconf, as the azblob
// sink's is, with the SDK's retries off: the store retries.
func parseAzureParams(q url.Values) (azconf.Options, error) {
	p := azconf.Options{NoRetries: true}
	for k, vs := range q {
		v := vs[len(vs)-1]
		switch k {
		case "account":
			p.Account = v
		case "endpoint":
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return p, fmt.Errorf("endpoint %q: want http://host:port/account or https://host", v)
			}
			p.Endpoint = v
		default:
			return p, fmt.Errorf("unknown parameter %q (want account or endpoint)", k)
		}
	}
	return p, nil
}
