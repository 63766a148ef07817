// Package v1alpha1 is the SluiceJob custom resource (group sluice.dev,
// version v1alpha1): its Go types, and its CustomResourceDefinition, which
// CRD generates from those types so that the schema the API server enforces
// can never drift from what the operator and the client package read and
// write. testdata/sluicejob-crd.golden.yaml is that CRD as `sluice render
// --crd` writes it; a test fails when it is stale (-update rewrites it).
//
// The package sits under deploy/ because it describes what is deployed; the
// operator (deploy/operator) and the client (deploy/jobs) import it, and
// nothing in the engine does.
//
// The types are plain structs with JSON tags: clients read and write them
// through client-go's dynamic client and the unstructured converter
// (FromUnstructured, ToUnstructured), so no generated deep-copy or typed
// clientset is needed.
//
// Concurrency: the functions are pure and safe for concurrent use.
package v1alpha1
