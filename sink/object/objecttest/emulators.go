package objecttest

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"os/exec"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/sluicehq/sluice/engine/cloud/azconf"
	"github.com/sluicehq/sluice/engine/cloud/s3conf"
)

// AzuriteKey is the well-known key of Azurite's development account.
const AzuriteKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

// StartS3 serves gofakes3 over HTTP with the bucket, points the AWS default
// chain at static test credentials (t.Setenv, so child processes inherit
// them) and returns the endpoint and a client.
func StartS3(t *testing.T, bucket string) (string, *s3.Client) {
	t.Helper()
	srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_REGION", "us-east-1")
	c, err := s3conf.Client(context.Background(), s3conf.Options{Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	return srv.URL, c
}

// StartAzurite runs Microsoft's Azure Storage emulator (blob service only) on
// a loopback port, points AZURE_STORAGE_CONNECTION_STRING at it (t.Setenv)
// and creates the container.
func StartAzurite(t *testing.T, containerName string) *azblob.Client {
	t.Helper()
	bin, err := exec.LookPath("azurite-blob")
	if err != nil {
		t.Fatalf("azurite-blob not found: install it with `npm install -g azurite@3.37.0` (.ci/run does)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "--blobHost", "127.0.0.1", "--blobPort", fmt.Sprint(port), "--location", t.TempDir(),
		"--silent", "--skipApiVersionCheck", "--loose")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	t.Setenv(azconf.ConnectionStringEnv, fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=%s;BlobEndpoint=http://127.0.0.1:%d/devstoreaccount1;", AzuriteKey, port))
	c, err := azconf.Client(azconf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := c.CreateContainer(context.Background(), containerName, nil)
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("azurite on port %d: %v", port, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
