package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// TLS is the `tls:` block of everything that dials a server over TLS: the
// Kafka brokers, the schema registry, the HTTPS and syslog sinks. Its keys
// are the same everywhere; an empty block means TLS with the system's roots.
// Config is its one builder.
type TLS struct {
	Pos Pos
	// CAFile is a PEM file of the CAs that sign the server's certificate;
	// default: the system's roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are the client certificate and its key, for a
	// server that asks for one; both or neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name the server's certificate must carry; default:
	// the host dialed.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any server certificate (tests only).
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// Validate reports a client certificate without its key, or a key without
// its certificate, at its position. It reads no file: the files are often
// mounted only where the job runs. A nil block is valid.
func (t *TLS) Validate() Errors {
	if t == nil || (t.CertFile == "") == (t.KeyFile == "") {
		return nil
	}
	key := "cert_file"
	if t.CertFile == "" {
		key = "key_file"
	}
	return Errors{t.Pos.Key(key).Errorf("tls cert_file and key_file go together")}
}

// Config builds the client-side *tls.Config of the block: the CA file (the
// system's roots when empty), an optional client certificate, the server
// name to verify (the dialer fills in the host dialed when it is empty), TLS
// 1.2 at least. A file that cannot be read or holds no certificate is an
// error at its key's FILE:LINE:COL when the block came from a file. A nil
// block builds the defaults.
func (t *TLS) Config() (*tls.Config, error) {
	if t == nil {
		return &tls.Config{MinVersion: tls.VersionTLS12}, nil
	}
	c := &tls.Config{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, t.errorf("ca_file", "tls ca_file: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, t.errorf("ca_file", "tls ca_file %s: no PEM certificate", t.CAFile)
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, t.errorf("cert_file", "tls cert_file/key_file: %v", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// errorf is an Error at key's position when the block was decoded from a
// file, else a plain error.
func (t *TLS) errorf(key, format string, args ...any) error {
	if t.Pos.Line == 0 {
		return fmt.Errorf(format, args...)
	}
	return t.Pos.Key(key).Errorf(format, args...)
}
