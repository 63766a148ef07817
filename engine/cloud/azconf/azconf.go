// Package azconf builds Azure Blob Storage clients the one way sluice does,
// for every part that talks to Azure Blob (the azblob sink, the Azure
// checkpoint store), the way Azure's own tools find their credentials:
//
//   - AZURE_STORAGE_CONNECTION_STRING, if set, names the endpoint and the
//     credentials (an account key or a SAS; Azurite's well-known key in
//     development);
//   - otherwise the account (Options.Account, else AZURE_STORAGE_ACCOUNT) and
//     the endpoint (Options.Endpoint, default
//     https://<account>.blob.core.windows.net/), with AZURE_STORAGE_KEY, a
//     shared key, if set;
//   - otherwise DefaultAzureCredential: a service principal from AZURE_*
//     variables, workload identity on AKS, a managed identity, the az CLI.
//
// It sits under engine/ so that sinks and checkpoint stores can share it
// without importing each other; it imports nothing of sluice. No error it
// returns quotes a connection string or a key.
package azconf

import (
	"fmt"
	"os"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
)

// The variables a client's settings are read from, Azure's own names.
const (
	ConnectionStringEnv = "AZURE_STORAGE_CONNECTION_STRING"
	AccountEnv          = "AZURE_STORAGE_ACCOUNT"
	KeyEnv              = "AZURE_STORAGE_KEY"
)

// Options are the settings a job file may give; zero values leave the
// environment's choice.
type Options struct {
	// Account is the storage account (default $AZURE_STORAGE_ACCOUNT).
	Account string
	// Endpoint is the blob service URL, for other clouds and emulators
	// (default https://<account>.blob.core.windows.net/).
	Endpoint string
	// NoRetries turns the SDK's own retries off, for a caller that retries
	// with its own policy (the checkpoint store); by default the SDK's
	// retry policy applies.
	NoRetries bool
}

// Client returns a blob service client for o.
func Client(o Options) (*azblob.Client, error) {
	var opts *azblob.ClientOptions
	if o.NoRetries {
		opts = &azblob.ClientOptions{ClientOptions: azcore.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}}}
	}
	if cs := os.Getenv(ConnectionStringEnv); cs != "" {
		c, err := azblob.NewClientFromConnectionString(cs, opts)
		if err != nil {
			// The SDK's message may quote the string, which holds a key.
			return nil, fmt.Errorf("azblob: %s is not a valid connection string", ConnectionStringEnv)
		}
		return c, nil
	}
	account, url := o.Account, o.Endpoint
	if account == "" {
		account = os.Getenv(AccountEnv)
	}
	if url == "" {
		if account == "" {
			return nil, fmt.Errorf("azblob: no storage account: set the account, %s or %s", AccountEnv, ConnectionStringEnv)
		}
		url = "https://" + account + ".blob.core.windows.net/"
	}
	if key := os.Getenv(KeyEnv); key != "" {
		if account == "" {
			return nil, fmt.Errorf("azblob: %s needs the account: set the account or %s", KeyEnv, AccountEnv)
		}
		cred, err := azblob.NewSharedKeyCredential(account, key)
		if err != nil {
			return nil, fmt.Errorf("azblob: %s is not a valid account key", KeyEnv)
		}
		c, err := azblob.NewClientWithSharedKeyCredential(url, cred, opts)
		if err != nil {
			return nil, fmt.Errorf("azblob: client for %s: %w", url, err)
		}
		return c, nil
	}
	cred, err := azidentity.NewDefaultAzureCredential(nil)
	if err != nil {
		return nil, fmt.Errorf("azblob: default azure credential: %w", err)
	}
	c, err := azblob.NewClient(url, cred, opts)
	if err != nil {
		return nil, fmt.Errorf("azblob: client for %s: %w", url, err)
	}
	return c, nil
}
