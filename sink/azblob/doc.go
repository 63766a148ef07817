// Package azblob is the Azure Blob Storage sink: rows become block blobs of
// JSON lines, CSV or Avro object container files, which close at
// max_object_bytes or max_object_age across many bundles.
//
//	sinks:
//	  - azblob: {account: acmeexport, container: export, prefix: denied/,
//	             format: json, max_object_bytes: 128MiB, max_object_age: 5m}
//
// Naming, rolling, the writer state in the checkpoint and the delivery
// guarantee (exactly-once across crashes for a job whose replay produces the
// same rows, with the exceptions sink/object lists) are sink/object's, shared
// with the gcs and s3 sinks. This package holds the configuration and
// object.Store on a container.
//
// # Blocks
//
// Block blobs fit the scheme as they are: each Flush stages its rows as an
// uncommitted block of the blob itself (Put Block; the block ID is the part
// ID, base64), and finalizing commits the block list of the parts the
// writer's state names, create-only (If-None-Match: *), with the metadata
// sluice_rows and sluice_close (Azure metadata names are C# identifiers, so
// the dashes of the other clouds' names are underscores). Blocks a crashed
// run staged and nobody lists are dropped by Azure at the commit (or after a
// week), so nothing is left behind. A blob holds at most 50,000 committed
// blocks: an object takes at most that many flushes.
//
// # Credentials and endpoints
//
// Clients are built by engine/cloud/azconf, as the Azure checkpoint store's
// are: a connection string in AZURE_STORAGE_CONNECTION_STRING when set
// (account keys, SAS, Azurite), else a shared key in AZURE_STORAGE_KEY, else
// DefaultAzureCredential (environment, workload identity on AKS, managed
// identity, the Azure CLI), against https://<account>.blob.core.windows.net/
// (account defaults to AZURE_STORAGE_ACCOUNT) or endpoint. The tests run the
// real azblob client against Azurite.
//
// # Errors
//
// HTTP 400, 401, 403 and 404 are permanent (engine.Permanent); 412,
// BlobAlreadyExists and ConditionNotMet are object.ErrExists; the rest are
// retried by the SDK and then by the engine's replay.
package azblob
