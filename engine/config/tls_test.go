package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testPKI is a CA, a server certificate for "localhost" only (not for
// 127.0.0.1, so that server_name matters) and a client certificate, in PEM
// files under dir.
type testPKI struct {
	caFile, certFile, keyFile string
	caPool                    *x509.CertPool
	server                    tls.Certificate
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, usage x509.ExtKeyUsage, dns ...string) ([]byte, *ecdsa.PrivateKey) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "leaf"}, DNSNames: dns,
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	srvDER, srvKey := leaf(2, x509.ExtKeyUsageServerAuth, "localhost")
	cliDER, cliKey := leaf(3, x509.ExtKeyUsageClientAuth)
	p := testPKI{
		caFile: filepath.Join(dir, "ca.pem"), certFile: filepath.Join(dir, "client.pem"), keyFile: filepath.Join(dir, "client.key"),
		caPool: x509.NewCertPool(), server: tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey},
	}
	p.caPool.AddCert(ca)
	keyDER, _ := x509.MarshalECPrivateKey(cliKey)
	for path, b := range map[string]*pem.Block{
		p.caFile: {Type: "CERTIFICATE", Bytes: caDER}, p.certFile: {Type: "CERTIFICATE", Bytes: cliDER}, p.keyFile: {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// handshake dials a TLS server on loopback that presents the PKI's server
// certificate (and, with clientAuth, requires a client certificate signed by
// its CA) with the config the block builds, and returns the handshake's
// error.
func (p testPKI) handshake(t *testing.T, block *TLS, clientAuth bool) error {
	t.Helper()
	srvCfg := &tls.Config{Certificates: []tls.Certificate{p.server}}
	if clientAuth {
		srvCfg.ClientAuth, srvCfg.ClientCAs = tls.RequireAndVerifyClientCert, p.caPool
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srvCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.(*tls.Conn).Handshake()
		c.Close()
	}()
	cfg, err := block.Config()
	if err != nil {
		t.Fatalf("Config: %v", err)
	}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: cfg}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		return err
	}
	defer c.Close()
	// A TLS 1.3 client learns that its certificate was refused on its
	// first read.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = c.Read(make([]byte, 1))
	if err != nil && !strings.Contains(err.Error(), "EOF") {
		return err
	}
	return nil
}

// TestTLSConfig: the one builder of every `tls:` block against a real TLS
// server: the CA file, the server name, a client certificate, and
// insecure_skip_verify.
func TestTLSConfig(t *testing.T) {
	p := newTestPKI(t)
	for _, tc := range []struct {
		name       string
		block      TLS
		clientAuth bool
		wantErr    string // "" for a successful handshake
	}{
		{"system roots refuse the test CA", TLS{ServerName: "localhost"}, false, "certificate signed by unknown authority"},
		{"ca_file and server_name", TLS{CAFile: p.caFile, ServerName: "localhost"}, false, ""},
		{"ca_file without server_name: the host dialed", TLS{CAFile: p.caFile}, false, "127.0.0.1"},
		{"insecure_skip_verify", TLS{InsecureSkipVerify: true}, false, ""},
		{"client certificate", TLS{CAFile: p.caFile, ServerName: "localhost", CertFile: p.certFile, KeyFile: p.keyFile}, true, ""},
		{"no client certificate when one is required", TLS{CAFile: p.caFile, ServerName: "localhost"}, true, "certificate required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := p.handshake(t, &tc.block, tc.clientAuth)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("handshake: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("handshake error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
	if c, err := (*TLS)(nil).Config(); err != nil || c.MinVersion != tls.VersionTLS12 {
		t.Errorf("nil block: %+v, %v; want the defaults", c, err)
	}
}

// TestTLSErrorPositions: a TLS block decoded from a file reports a file it
// cannot use, and a certificate without its key, at FILE:LINE:COL.
func TestTLSErrorPositions(t *testing.T) {
	p := newTestPKI(t)
	var cfg struct {
		Kafka struct {
			TLS *TLS `yaml:"tls"`
		} `yaml:"kafka"`
		HTTPS struct {
			TLS *TLS `yaml:"tls"`
		} `yaml:"https"`
		Syslog struct {
			TLS *TLS `yaml:"tls"`
		} `yaml:"syslog"`
	}
	file := "kafka:\n  tls:\n    ca_file: /nonexistent/ca.pem\nhttps:\n  tls: {ca_file: " + p.keyFile + "}\nsyslog:\n  tls: {key_file: " + p.keyFile + "}\n"
	if err := Unmarshal("coordinator.yaml", []byte(file), &cfg); err != nil {
		t.Fatal(err)
	}
	_, err := cfg.Kafka.TLS.Config()
	if want := "coordinator.yaml:3:14: tls ca_file: open /nonexistent/ca.pem: no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("missing ca_file: %v, want %s", err, want)
	}
	_, err = cfg.HTTPS.TLS.Config()
	if want := "coordinator.yaml:5:18: tls ca_file " + p.keyFile + ": no PEM certificate"; err == nil || err.Error() != want {
		t.Errorf("ca_file without a certificate: %v, want %s", err, want)
	}
	es := cfg.Syslog.TLS.Validate()
	if want := "coordinator.yaml:7:19: tls cert_file and key_file go together"; es == nil || es.Error() != want {
		t.Errorf("key without certificate: %v, want %s", es, want)
	}
	// A block built in Go has no position: the error is plain.
	_, err = (&TLS{CAFile: "/nonexistent/ca.pem"}).Config()
	if err == nil || !strings.HasPrefix(err.Error(), "tls ca_file: open") {
		t.Errorf("block without a position: %v", err)
	}
}
