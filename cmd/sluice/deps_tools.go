//go:build sluicedeps

// This file pins the modules that the packages of this repository are being
// written against, so that `go mod tidy` keeps them while work is in flight.
package main

import (
	_ "cloud.google.com/go/bigquery/storage/apiv1/storagepb"
	_ "cloud.google.com/go/bigquery/storage/managedwriter"
	_ "cloud.google.com/go/bigquery/storage/managedwriter/adapt"
	_ "cloud.google.com/go/storage"
	_ "github.com/cockroachdb/pebble"
	_ "github.com/fsouza/fake-gcs-server/fakestorage"
	_ "github.com/golang/snappy"
	_ "github.com/google/go-cmp/cmp"
	_ "github.com/hamba/avro/v2"
	_ "github.com/klauspost/compress/zstd"
	_ "github.com/linkedin/goavro/v2"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/twmb/franz-go/pkg/kadm"
	_ "github.com/twmb/franz-go/pkg/kfake"
	_ "github.com/twmb/franz-go/pkg/kgo"
	_ "github.com/twmb/franz-go/pkg/sasl/oauth"
	_ "github.com/twmb/franz-go/pkg/sasl/plain"
	_ "github.com/twmb/franz-go/pkg/sasl/scram"
	_ "github.com/twmb/franz-go/pkg/sr"
	_ "golang.org/x/sync/errgroup"
	_ "google.golang.org/api/option"
	_ "google.golang.org/grpc"
	_ "google.golang.org/protobuf/types/dynamicpb"
	_ "gopkg.in/yaml.v3"
	_ "k8s.io/api/apps/v1"
	_ "k8s.io/client-go/kubernetes"
	_ "k8s.io/client-go/tools/leaderelection"
	_ "modernc.org/sqlite"
	_ "vitess.io/vitess/go/vt/sqlparser"
)
