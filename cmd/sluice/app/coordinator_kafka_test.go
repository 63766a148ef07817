package app

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/source/kafka"
)

// TestCoordinatorSASLTLS: a cluster that requires SASL/SCRAM-SHA-512 over
// TLS. The coordinator, configured with a kafka block as a job file writes
// it, reads the job's offsets through it; a plain client is refused.
func TestCoordinatorSASLTLS(t *testing.T) {
	dir := t.TempDir()
	serverTLS, caFile := testCA(t, dir)
	const topic, group = "secure.traffic", "secure-job"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topic),
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "sluice", "s3cret"), kfake.TLS(serverTLS))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	addr := cluster.ListenAddrs()[0]
	os.WriteFile(filepath.Join(dir, "kafka-password"), []byte("s3cret\n"), 0o600)
	cfgPath := filepath.Join(dir, "coordinator.yaml")
	os.WriteFile(cfgPath, fmt.Appendf(nil, `namespace: sluice
kafka:
  brokers: [%s]
  tls: {ca_file: %s, server_name: localhost}
  sasl: {mechanism: SCRAM-SHA-512, username: sluice, password_file: %s}
jobs:
  - name: %s
    topics: [%s]
`, addr, caFile, filepath.Join(dir, "kafka-password"), group, topic), 0o644)

	fc, err := loadCoordinatorFile(cfgPath, false)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := coordinatorKafkaClient(fc.cluster(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// The backlog: 300 records, of which the group committed 100 on
	// partition 0.
	var recs []*kgo.Record
	for i := range 300 {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(i % 3), Value: []byte("x")})
	}
	opts, err := kafka.ClientOpts(fc.cluster(nil))
	if err != nil {
		t.Fatal(err)
	}
	prod, err := kgo.NewClient(append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce over SASL/TLS: %v", err)
	}
	adm := kadm.NewClient(kc)
	var offs kadm.Offsets
	offs.Add(kadm.Offset{Topic: topic, Partition: 0, At: 100, LeaderEpoch: -1})
	if _, err := adm.CommitOffsets(ctx, group, offs); err != nil {
		t.Fatalf("commit: %v", err)
	}

	// What the coordinator's signal reader asks: end offsets and the
	// group's commits.
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("end offsets over SASL/TLS: %v", err)
	}
	committed, err := adm.FetchOffsetsForTopics(ctx, group, topic)
	if err != nil {
		t.Fatalf("committed offsets over SASL/TLS: %v", err)
	}
	var end, backlog int64
	ends.Each(func(e kadm.ListedOffset) {
		end += e.Offset
		pos := int64(0)
		if c, ok := committed.Lookup(e.Topic, e.Partition); ok && c.At >= 0 {
			pos = c.At
		}
		backlog += e.Offset - pos
	})
	if end != 300 || backlog != 200 {
		t.Fatalf("end %d, backlog %d; want 300 and 200", end, backlog)
	}

	// A bare client, as the coordinator used to build, reads nothing.
	plain, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RequestRetries(0), kgo.RetryTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
	defer pcancel()
	if _, err := kadm.NewClient(plain).ListEndOffsets(pctx, topic); err == nil {
		t.Fatal("a client without TLS and SASL read the backlog")
	}
}

// testCA writes a CA certificate to dir and returns a server TLS config for
// localhost/127.0.0.1 signed by it, and the CA file's path.
func testCA(t *testing.T, dir string) (*tls.Config, string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sluice test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, caFile
}
