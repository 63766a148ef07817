// Package storetest runs the object stores that sluice's S3 and Azure Blob
// clients are tested against, on loopback, for tests only:
//
//   - StartS3: gofakes3 (an in-memory S3 server) over HTTP in the test
//     process, which the real aws-sdk-go-v2 client reaches, and so can a
//     `sluice run` child process. gofakes3 v1.2.0 enforces If-None-Match: *
//     on PutObject (412 when the key exists), atomically under its backend's
//     lock; TestFakesEnforceConditionalWrites in package checkpoint checks
//     it, so a fake that stopped enforcing it fails a test instead of
//     silently passing the race tests.
//   - StartAzurite: Microsoft's Azure Storage emulator (npm azurite, its
//     blob service), as a child process with its data under t.TempDir(),
//     killed when the test ends. A missing azurite-blob fails the test with
//     the command that installs it.
//
// Both set no environment themselves: the caller points the clients at them
// (Env returns the variables).
package storetest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// S3 is gofakes3 serving one in-memory backend on a loopback port.
type S3 struct {
	// Addr is host:port of the server.
	Addr string

	backend *s3mem.Backend
	srv     *http.Server
	done    chan struct{}
}

// StartS3 serves gofakes3 with the given buckets on a free loopback port
// until the test ends.
func StartS3(t testing.TB, buckets ...string) *S3 {
	t.Helper()
	backend := s3mem.New()
	for _, b := range buckets {
		if err := backend.CreateBucket(b); err != nil {
			t.Fatalf("storetest: create bucket %s: %v", b, err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	faker := gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog()))
	s := &S3{Addr: ln.Addr().String(), backend: backend, srv: &http.Server{Handler: faker.Server()}, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.srv.Serve(ln)
	}()
	t.Cleanup(func() {
		s.srv.Close()
		<-s.done
	})
	return s
}

// S3Env is what a process needs to reach an S3 fake with AWS's default
// credential chain: static keys (gofakes3 checks no signature) and no
// shared config files or instance metadata to look for.
func S3Env() map[string]string {
	return map[string]string{
		"AWS_ACCESS_KEY_ID":           "storetest",
		"AWS_SECRET_ACCESS_KEY":       "storetest",
		"AWS_SESSION_TOKEN":           "",
		"AWS_PROFILE":                 "",
		"AWS_REGION":                  "",
		"AWS_ENDPOINT_URL":            "",
		"AWS_ENDPOINT_URL_S3":         "",
		"AWS_CONFIG_FILE":             "/nonexistent/aws-config",
		"AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
		"AWS_EC2_METADATA_DISABLED":   "true",
	}
}

// S3URL is the checkpoint store URL of bucket/prefix on an S3-compatible
// endpoint at addr (host:port, plain HTTP), path-style.
func S3URL(addr, bucket, prefix string) string {
	return fmt.Sprintf("s3://%s/%s?endpoint=http://%s&region=us-east-1&path_style=true", bucket, prefix, addr)
}

// Client returns a client of the server at addr (the fake's, or a proxy's in
// front of it) with the SDK's retries off, for writing behind a store's
// back.
func (s *S3) Client(addr string) *s3.Client {
	return s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String("http://" + addr),
		UsePathStyle: true,
		Credentials:  aws.AnonymousCredentials{},
		Retryer:      aws.NopRetryer{},
	})
}

// AzuriteAccount and AzuriteKey are Azurite's well-known development account
// and key (published in Azurite's documentation; not a secret).
const (
	AzuriteAccount = "devstoreaccount1"
	AzuriteKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// AzuriteInstall is the command that installs the emulator.
const AzuriteInstall = "npm install -g azurite@3.37.0"

// Azurite is the Azurite blob service, a child process on a loopback port.
type Azurite struct {
	// Addr is host:port of the blob service.
	Addr string
}

// StartAzurite starts azurite-blob with its data under t.TempDir(), creates
// the containers, and kills it when the test ends.
func StartAzurite(t testing.TB, containers ...string) *Azurite {
	t.Helper()
	bin, err := exec.LookPath("azurite-blob")
	if err != nil {
		t.Fatalf("storetest: azurite-blob is not installed: run `%s` (Node 20)", AzuriteInstall)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin,
		"--blobHost", "127.0.0.1", "--blobPort", "0", // it says which port it got
		"--location", t.TempDir(),
		"--skipApiVersionCheck", // the Go SDK may speak a newer API version than this Azurite knows
		"--disableTelemetry",
		"--silent",
	)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("storetest: start azurite-blob: %v", err)
	}
	var (
		mu   sync.Mutex // guards logs
		logs strings.Builder
	)
	ready := make(chan string, 1)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			mu.Lock()
			logs.WriteString(sc.Text() + "\n")
			mu.Unlock()
			// "Azurite Blob service successfully listens on http://127.0.0.1:PORT"
			if _, addr, ok := strings.Cut(sc.Text(), "successfully listens on http://"); ok {
				select {
				case ready <- strings.TrimSpace(addr):
				default:
				}
			}
		}
		io.Copy(io.Discard, out)
	}()
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
	})
	var addr string
	select {
	case addr = <-ready:
	case <-exited:
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("storetest: azurite-blob exited before it listened:\n%s", logs.String())
	case <-time.After(2 * time.Minute): // Node takes tens of seconds to load it on a busy machine
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("storetest: azurite-blob did not listen within 2 minutes:\n%s", logs.String())
	}
	a := &Azurite{Addr: addr}
	for _, c := range containers {
		if _, err := a.Container(a.Addr, c).Create(context.Background(), nil); err != nil {
			t.Fatalf("storetest: create container %s: %v", c, err)
		}
	}
	return a
}

// ConnectionString is the connection string of Azurite's development
// account for a blob service at addr (Azurite's, or a proxy's in front of
// it): what AZURE_STORAGE_CONNECTION_STRING holds.
func ConnectionString(addr string) string {
	return fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=http://%s/%s;",
		AzuriteAccount, AzuriteKey, addr, AzuriteAccount)
}

// AzureEnv is what a process needs to reach the blob service at addr with
// sluice's Azure client: the connection string, and none of the variables
// that would take precedence or point elsewhere.
func AzureEnv(addr string) map[string]string {
	return map[string]string{
		"AZURE_STORAGE_CONNECTION_STRING": ConnectionString(addr),
		"AZURE_STORAGE_ACCOUNT":           "",
		"AZURE_STORAGE_KEY":               "",
	}
}

// Container returns a client of container on the blob service at addr, with
// the SDK's retries off, for writing behind a store's back.
func (a *Azurite) Container(addr, name string) *container.Client {
	c, err := azblob.NewClientFromConnectionString(ConnectionString(addr),
		&azblob.ClientOptions{ClientOptions: azcore.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}}})
	if err != nil {
		panic(err) // the connection string is a constant's
	}
	return c.ServiceClient().NewContainerClient(name)
}

// Proxy forwards TCP connections from its own loopback port to a server, and
// can be taken down (its port refuses connections and open connections are
// cut) and brought back up on the same port: an outage of the server as its
// clients see it, which leaves the server's data alone.
type Proxy struct {
	// Addr is host:port of the proxy.
	Addr   string
	target string

	mu    sync.Mutex // guards ln and conns
	ln    net.Listener
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// StartProxy forwards to target (host:port) until the test ends.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, conns: map[net.Conn]bool{}}
	p.serve(ln)
	t.Cleanup(p.Down)
	return p
}

func (p *Proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Go(func() { p.forward(c) })
		}
	})
}

func (p *Proxy) forward(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil { // went down meanwhile
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// Down closes the proxy's port and cuts every open connection. It is
// idempotent.
func (p *Proxy) Down() {
	p.mu.Lock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// Up listens on the proxy's port again.
func (p *Proxy) Up() error {
	var ln net.Listener
	var err error
	for range 50 { // the port may linger a moment after Down
		if ln, err = net.Listen("tcp", p.Addr); err == nil {
			p.serve(ln)
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("storetest: proxy up on %s: %w", p.Addr, err)
}
