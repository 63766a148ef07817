package azblob

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/cloud/azconf"
	"github.com/sluicehq/sluice/engine/config"
	"github.com/sluicehq/sluice/sink/object"
)

// Config is the `azblob:` sink of a pipeline.
type Config struct {
	Pos config.Pos
	// Container holds the blobs.
	Container string `yaml:"container" required:"true"`
	// Account is the storage account (https://<account>.blob.core.windows.net/).
	Account string `yaml:"account"`
	// Endpoint is the blob service URL instead of the account's, for other
	// clouds and emulators.
	Endpoint string `yaml:"endpoint"`
	// Layout holds prefix, format, codec, max_object_bytes and
	// max_object_age.
	object.Layout `yaml:",inline"`
}

// Validate reports settings that cannot work, at their positions.
func (c *Config) Validate() error {
	errs := c.Layout.Check(c.Pos)
	if c.Container == "" {
		errs = append(errs, c.Pos.Key("container").Errorf("container must not be empty"))
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// Destination is the container and prefix the sink writes under,
// "container/prefix": it names the sink by default and finds two sinks whose
// objects would share names.
func (c *Config) Destination() string { return c.Container + "/" + c.Prefix }

// Option configures New beyond its Config.
type Option func(*options)

type options struct {
	client *azblob.Client
}

// WithClient uses c (default: a client azconf builds from the Config's
// account and endpoint).
func WithClient(c *azblob.Client) Option { return func(o *options) { o.client = c } }

// Sink writes rows to block blobs of a container. It implements
// engine.ResumableSink.
type Sink struct {
	*object.Sink
	client *azblob.Client
}

// New builds the Azure Blob sink of cfg for rows of schema.
func New(ctx context.Context, cfg Config, schema *engine.Schema, env engine.SinkEnv, opts ...Option) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	s := &Sink{client: o.client}
	if s.client == nil {
		c, err := azconf.Client(azconf.Options{Account: cfg.Account, Endpoint: cfg.Endpoint})
		if err != nil {
			return nil, fmt.Errorf("azblob sink: %w", err)
		}
		s.client = c
	}
	st := &store{c: s.client.ServiceClient().NewContainerClient(cfg.Container)}
	var err error
	if s.Sink, err = object.New(cfg.Layout.Options("azblob"), st, schema, env); err != nil {
		return nil, fmt.Errorf("azblob sink: %w", err)
	}
	return s, nil
}

// store is object.Store on a container: parts are uncommitted blocks of the
// blob itself, and finalizing commits the block list.
type store struct {
	c *container.Client
}

// blockID is a part ID as Azure wants it: base64, all of one length per blob
// (part IDs are).
func blockID(id string) string { return base64.StdEncoding.EncodeToString([]byte(id)) }

// metaKey is an object metadata key as Azure allows it: a C# identifier.
func metaKey(k string) string { return strings.ReplaceAll(k, "-", "_") }

func (s *store) Stage(ctx context.Context, name, id string, data []byte) error {
	_, err := s.c.NewBlockBlobClient(name).StageBlock(ctx, blockID(id), streaming.NopCloser(bytes.NewReader(data)), nil)
	return classify(err)
}

func (s *store) Commit(ctx context.Context, name string, ids []string, meta object.Meta) error {
	blocks := make([]string, len(ids))
	for i, id := range ids {
		blocks[i] = blockID(id)
	}
	md := map[string]*string{}
	for k, v := range meta.Metadata() {
		md[metaKey(k)] = &v
	}
	any := azcore.ETagAny
	_, err := s.c.NewBlockBlobClient(name).CommitBlockList(ctx, blocks, &blockblob.CommitBlockListOptions{
		Metadata:    md,
		HTTPHeaders: &blob.HTTPHeaders{BlobContentType: &meta.ContentType},
		// Create-only: a blob is never replaced.
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: &any}},
	})
	return classify(err)
}

func (s *store) Committed(ctx context.Context, name string) (int64, bool, error) {
	p, err := s.c.NewBlobClient(name).GetProperties(ctx, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return 0, false, nil
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
		// A blob with only uncommitted blocks answers 404 too.
		return 0, false, nil
	}
	if err != nil {
		return 0, false, classify(err)
	}
	want := metaKey(object.MetaRows)
	for k, v := range p.Metadata {
		if strings.EqualFold(k, want) && v != nil {
			rows, err := strconv.ParseInt(*v, 10, 64)
			if err == nil {
				return rows, true, nil
			}
		}
	}
	return 0, true, engine.Permanent(fmt.Errorf("blob %s has no %s metadata: not written by this sink", name, want))
}

// Abandon does nothing: Azure drops a blob's uncommitted blocks when a block
// list is committed, and garbage-collects them after a week otherwise.
func (s *store) Abandon(ctx context.Context, name string) error { return nil }

// classify marks what retrying cannot fix (bad request, credentials,
// permission, a missing container) permanent, and a failed create-only
// commit object.ErrExists.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet) {
		return fmt.Errorf("%w: %w", object.ErrExists, err)
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		switch re.StatusCode {
		case http.StatusPreconditionFailed:
			return fmt.Errorf("%w: %w", object.ErrExists, err)
		case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
			return engine.Permanent(err)
		}
	}
	return err
}
