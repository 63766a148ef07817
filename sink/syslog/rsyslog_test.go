package syslog_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/enginetest"
	"github.com/sluicehq/sluice/sink/syslog"
)

const install = "apt-get install -y rsyslog rsyslog-gnutls"

// writeCerts writes a CA and a server certificate for 127.0.0.1 into dir.
func writeCerts(t *testing.T, dir string) {
	t.Helper()
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, srv, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	write("ca.pem", "CERTIFICATE", caDER)
	write("server.pem", "CERTIFICATE", der)
	write("server-key.pem", "PRIVATE KEY", keyDER)
}

// rsyslog runs rsyslogd with a plain TCP and a TLS listener on loopback; each
// writes the fields of what it receives, tab-separated, to its own file.
type rsyslog struct {
	dir            string
	tcpPort, tlsPt int
}

func startRsyslog(t *testing.T) *rsyslog {
	t.Helper()
	bin, err := exec.LookPath("rsyslogd")
	if err != nil {
		t.Fatalf("rsyslogd not found in PATH (it lives in an sbin directory): install it with `%s`", install)
	}
	r := &rsyslog{dir: t.TempDir(), tcpPort: enginetest.FreePort(t), tlsPt: enginetest.FreePort(t)}
	writeCerts(t, r.dir)
	conf := fmt.Sprintf(`global(workDirectory="%[1]s"
  defaultNetstreamDriverCAFile="%[1]s/ca.pem"
  defaultNetstreamDriverCertFile="%[1]s/server.pem"
  defaultNetstreamDriverKeyFile="%[1]s/server-key.pem")
module(load="imtcp" maxSessions="100")
template(name="fields" type="string"
  string="%%pri%%\t%%protocol-version%%\t%%timereported:::date-rfc3339%%\t%%hostname%%\t%%app-name%%\t%%procid%%\t%%msgid%%\t%%structured-data%%\t%%msg%%\n")
input(type="imtcp" address="127.0.0.1" port="%[2]d" ruleset="tcp")
input(type="imtcp" address="127.0.0.1" port="%[3]d" ruleset="tls"
  streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
ruleset(name="tcp") { action(type="omfile" file="%[1]s/tcp.log" template="fields") }
ruleset(name="tls") { action(type="omfile" file="%[1]s/tls.log" template="fields") }
`, r.dir, r.tcpPort, r.tlsPt)
	cf := filepath.Join(r.dir, "rsyslog.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-n", "-f", cf, "-i", filepath.Join(r.dir, "rsyslog.pid"))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start rsyslogd: %v (install it with `%s`)", err, install)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("rsyslogd output:\n%s", out.String())
		}
	})
	for _, p := range []int{r.tcpPort, r.tlsPt} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("rsyslogd does not listen on %d (is the gtls driver there? `%s`): %s", p, install, out.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return r
}

// lines waits until file holds n lines and returns them split at tabs.
func (r *rsyslog) lines(t *testing.T, file string, n int) [][]string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var got [][]string
		if f, err := os.Open(filepath.Join(r.dir, file)); err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				got = append(got, strings.Split(sc.Text(), "\t"))
			}
			f.Close()
		}
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func schema() *engine.Schema {
	str := func() *engine.Type { return &engine.Type{Kind: engine.KindString} }
	return engine.MustSchema(&engine.Type{Kind: engine.KindRecord, Name: "fw", Fields: []engine.Field{
		{Name: "action", Type: &engine.Type{Kind: engine.KindEnum, Symbols: []string{"ALLOW", "DENY"}}},
		{Name: "src_ip", Type: str()},
		{Name: "src_port", Type: &engine.Type{Kind: engine.KindInt}},
		{Name: "dst_ip", Type: str()},
		{Name: "dst_port", Type: &engine.Type{Kind: engine.KindInt}},
		{Name: "app", Type: &engine.Type{Kind: engine.KindUnion, Branches: []*engine.Type{{Kind: engine.KindNull}, str()}}},
		{Name: "time", Type: &engine.Type{Kind: engine.KindLong, Logical: engine.TimestampMillis}},
	}})
}

var base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func fill(row *engine.Row, i int) {
	row.Reset(7)
	row.Slots[0] = engine.Slot{N: uint64(i % 2), S: []string{"ALLOW", "DENY"}[i%2]}
	row.SetStr(1, fmt.Sprintf("10.0.0.%d", i))
	row.SetInt(2, int64(40000+i))
	row.SetStr(3, "192.168.1.1")
	row.SetInt(4, 443)
	if i%4 == 3 {
		row.SetNull(5)
	} else {
		row.SetStr(5, "web-browsing")
	}
	row.SetInt(6, base.Add(time.Duration(i)*time.Second).UnixMilli())
}

func TestSyslogRsyslog(t *testing.T) {
	r := startRsyslog(t)
	const n = 50
	for _, tc := range []struct {
		name, address, format, file string
		tls                         *syslog.TLS
	}{
		{"tcp/rfc5424", fmt.Sprintf("tcp://127.0.0.1:%d", r.tcpPort), syslog.RFC5424, "tcp.log", nil},
		{"tls/rfc5424", fmt.Sprintf("tcp+tls://127.0.0.1:%d", r.tlsPt), syslog.RFC5424, "tls.log", &syslog.TLS{CAFile: filepath.Join(r.dir, "ca.pem")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			cfg := syslog.Config{
				Address: tc.address, Format: tc.format, AppName: "sluice-test", Hostname: "worker-0",
				Facility: "local3", Severity: "warning", MsgID: "FW",
				Message:        "{action} {src_ip}:{src_port} -> {dst_ip}:{dst_port} app={app}",
				StructuredData: `[fw@32473 app="{app}"]`,
				Timestamp:      "time",
				TLS:            tc.tls,
			}
			s, err := syslog.New(ctx, cfg, schema(), engine.SinkEnv{Name: "syslog/0"})
			if err != nil {
				t.Fatal(err)
			}
			w, err := s.Open(ctx, engine.TaskID{Topic: "in"})
			if err != nil {
				t.Fatal(err)
			}
			row := engine.NewRow(7)
			for i := range n {
				fill(row, i)
				if err := w.Write(row); err != nil {
					t.Fatal(err)
				}
				if i%20 == 19 {
					if err := w.Flush(ctx); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := w.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(ctx); err != nil {
				t.Fatal(err)
			}
			got := r.lines(t, tc.file, n)
			var want [][]string
			for i := range n {
				app, sd := "web-browsing", `[fw@32473 app="web-browsing"]`
				if i%4 == 3 {
					app, sd = "-", `[fw@32473 app="-"]`
				}
				want = append(want, []string{
					"156", // local3 (19) × 8 + warning (4)
					"1",
					base.Add(time.Duration(i) * time.Second).Format("2006-01-02T15:04:05.000000Z07:00"),
					"worker-0", "sluice-test", fmt.Sprint(os.Getpid()), "FW", sd,
					fmt.Sprintf("%s 10.0.0.%d:%d -> 192.168.1.1:443 app=%s", []string{"ALLOW", "DENY"}[i%2], i, 40000+i, app),
				})
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("received (-want +got):\n%s", diff)
			}
		})
	}
}
