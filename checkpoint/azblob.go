package checkpoint

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
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
	container *container.Client
	prefix    string // "" or ends with "/"
	retry     *retrier
}

// NewAzure returns a Store in the container client names, under prefix (a
// leading or trailing slash is ignored). Build the client with retries off
// (policy.RetryOptions{MaxRetries: -1}) so that the store's policy is the
// only one. Of the options, WithBackoff and WithLogger apply.
func NewAzure(client *container.Client, prefix string, opts ...Option) *Azure {
	return newAzure(client, prefix, newConfig(opts))
}

func newAzure(client *container.Client, prefix string, cfg *config) *Azure {
	return &Azure{container: client, prefix: cleanPrefix(prefix), retry: cfg.retrier()}
}

// Put implements Store.
func (a *Azure) Put(ctx context.Context, key string, data []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	sum := md5.Sum(data)
	b := a.container.NewBlockBlobClient(a.prefix + key)
	err := a.retry.do(ctx, "put", func(ctx context.Context, attempt int) error {
		_, err := b.Upload(ctx, streaming.NopCloser(bytes.NewReader(data)), &blockblob.UploadOptions{
			HTTPHeaders: &blob.HTTPHeaders{
				BlobContentType: new("application/octet-stream"),
				BlobContentMD5:  sum[:],
			},
			TransactionalValidation: blob.TransferValidationTypeMD5(sum[:]),
			AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{
				IfNoneMatch: new(azcore.ETagAny),
			}},
		})
		err = classifyAzure(err)
		if attempt > 0 && errors.Is(err, ErrExists) {
			// An earlier attempt may have created the blob and lost
			// the response: if the blob is ours, the Put succeeded.
			switch got, gerr := a.get(ctx, key); {
			case gerr == nil && bytes.Equal(got, data):
				return nil
			case isRetryable(gerr):
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
func (a *Azure) Get(ctx context.Context, key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	var data []byte
	err := a.retry.do(ctx, "get", func(ctx context.Context, _ int) error {
		var err error
		data, err = a.get(ctx, key)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("checkpoint: get %s: %w", key, err)
	}
	return data, nil
}

// get reads the blob and checks it against its Content-MD5. Bytes that do
// not match are read once more at once: a second mismatch is damage at rest,
// reported as corruption (so that LoadLatest skips the checkpoint) rather
// than as a failure to retry.
func (a *Azure) get(ctx context.Context, key string) ([]byte, error) {
	for try := 0; ; try++ {
		resp, err := a.container.NewBlobClient(a.prefix+key).DownloadStream(ctx, nil)
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
			return nil, &CorruptError{Key: key, Field: "blob", Reason: "contents do not match the blob's Content-MD5"}
		}
	}
}

// List implements Store.
func (a *Azure) List(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	err := a.retry.do(ctx, "list", func(ctx context.Context, _ int) error {
		keys = keys[:0]
		p := a.container.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: new(a.prefix + prefix)})
		for p.More() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return classifyAzure(err)
			}
			for _, item := range page.Segment.BlobItems {
				if item.Name != nil {
					keys = append(keys, strings.TrimPrefix(*item.Name, a.prefix))
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("checkpoint: list %q: %w", prefix, err)
	}
	return keys, nil
}

// Delete implements Store.
func (a *Azure) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	err := a.retry.do(ctx, "delete", func(ctx context.Context, _ int) error {
		_, err := a.container.NewBlobClient(a.prefix+key).Delete(ctx, nil)
		if err = classifyAzure(err); errors.Is(err, ErrNotFound) { // gone, perhaps by an attempt whose response was lost
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("checkpoint: delete %s: %w", key, err)
	}
	return nil
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
