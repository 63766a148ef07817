// Package azconf builds Azure Blob Storage clients the one way sluice does,
// for every part that talks to Azure Blob (the azblob sink, the Azure
// checkpoint store): a connection string when one is given (the
// AZURE_STORAGE_CONNECTION_STRING variable: shared keys, SAS, and Azurite),
// otherwise DefaultAzureCredential (environment, workload identity on AKS,
// managed identity, the Azure CLI) against the account's endpoint. It sits
// under engine/ so that sinks and checkpoint stores can share it without
// importing each other; it imports nothing of sluice.
package azconf

import (
	"fmt"
	"os"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
)

// ConnectionStringEnv is the variable a connection string is read from.
const ConnectionStringEnv = "AZURE_STORAGE_CONNECTION_STRING"

// Options are the settings a job file may give.
type Options struct {
	// Account is the storage account; its endpoint is
	// https://<account>.blob.core.windows.net/ unless Endpoint is set.
	Account string
	// Endpoint is the blob service URL, for other clouds and emulators.
	Endpoint string
}

// Client returns a blob service client for o.
func Client(o Options) (*azblob.Client, error) {
	if cs := os.Getenv(ConnectionStringEnv); cs != "" {
		c, err := azblob.NewClientFromConnectionString(cs, nil)
		if err != nil {
			// The connection string holds a key: never print it.
			return nil, fmt.Errorf("azblob: the connection string in %s is invalid", ConnectionStringEnv)
		}
		return c, nil
	}
	url := o.Endpoint
	if url == "" {
		if o.Account == "" {
			return nil, fmt.Errorf("azblob: an account (or an endpoint, or %s) is needed", ConnectionStringEnv)
		}
		url = "https://" + o.Account + ".blob.core.windows.net/"
	}
	cred, err := azidentity.NewDefaultAzureCredential(nil)
	if err != nil {
		return nil, fmt.Errorf("azblob: default azure credential: %w", err)
	}
	c, err := azblob.NewClient(url, cred, nil)
	if err != nil {
		return nil, fmt.Errorf("azblob: client for %s: %w", url, err)
	}
	return c, nil
}
