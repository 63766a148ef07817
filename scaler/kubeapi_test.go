package scaler

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/sluicehq/sluice/engine/enginetest"
)

// controlPlane is a real etcd and kube-apiserver on loopback.
type controlPlane struct {
	URL        string
	AdminToken string
}

const etcdInstall = "apt-get update && apt-get install -y etcd-server"

// kubeAPIServerBinary returns the cached kube-apiserver, building it with
// testdata/build-kube-apiserver.sh (minutes, once per machine) when absent.
// It runs before any deadline of the test starts, and says on stdout when the
// one-time build is running so that a silent minute does not look like a hang.
func kubeAPIServerBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("SLUICE_KUBE_APISERVER"); p != "" {
		return p
	}
	script, err := filepath.Abs(filepath.Join("testdata", "build-kube-apiserver.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if !kubeAPIServerCached() {
		fmt.Fprintf(os.Stdout, "kube-apiserver is not cached: building it once with %s (about 5 minutes on 2 cores; later runs reuse it)\n", script)
	}
	start := time.Now()
	cmd := exec.Command("sh", script)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kube-apiserver is missing and could not be built: %v\n%s\nbuild it with: sh scaler/testdata/build-kube-apiserver.sh (needs the Go module proxy)", err, stderr.String())
	}
	if d := time.Since(start); d > 10*time.Second {
		fmt.Fprintf(os.Stdout, "kube-apiserver built in %s\n", d.Round(time.Second))
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

// kubeAPIServerCached reports whether build-kube-apiserver.sh will find its
// binary without building: the same path the script uses.
func kubeAPIServerCached() bool {
	cache, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		return false
	}
	v := os.Getenv("KUBE_VERSION")
	if v == "" {
		v = "1.34.1"
	}
	bin := filepath.Join(strings.TrimSpace(string(cache)), "..", "sluice-testbin", "kube-apiserver-v"+v)
	fi, err := os.Stat(bin)
	return err == nil && fi.Mode()&0o111 != 0
}

// startProcess starts a command whose output goes to a log file, and stops
// it by its own process id when the test ends.
func startProcess(t *testing.T, logPath, bin string, args ...string) {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("%s log tail:\n%s", filepath.Base(bin), b)
		}
	})
}

func startControlPlane(t *testing.T) controlPlane {
	t.Helper()
	etcd, err := exec.LookPath("etcd")
	if err != nil {
		t.Fatalf("etcd is not installed: %s", etcdInstall)
	}
	kapi := kubeAPIServerBinary(t)
	dir := t.TempDir()

	clientPort, peerPort := enginetest.FreePort(t), enginetest.FreePort(t)
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	startProcess(t, filepath.Join(dir, "etcd.log"), etcd,
		"--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peerPort),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peerPort),
		"--initial-cluster", fmt.Sprintf("default=http://127.0.0.1:%d", peerPort),
	)

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "sa.key"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	writeFile(t, filepath.Join(dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
	admin := "admin-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	writeFile(t, filepath.Join(dir, "tokens.csv"), []byte(admin+",admin,admin,system:masters\n"))

	port := enginetest.FreePort(t)
	startProcess(t, filepath.Join(dir, "kube-apiserver.log"), kapi,
		"--etcd-servers="+etcdURL,
		"--cert-dir="+filepath.Join(dir, "certs"),
		"--secure-port="+strconv.Itoa(port), "--bind-address=127.0.0.1",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file="+filepath.Join(dir, "sa.key"),
		"--token-auth-file="+filepath.Join(dir, "tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=10.0.0.0/24",
		"--allow-privileged=true",
	)
	cp := controlPlane{URL: fmt.Sprintf("https://127.0.0.1:%d", port), AdminToken: admin}

	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	deadline := time.Now().Add(90 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, cp.URL+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := hc.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("kube-apiserver not ready after 90 s (last error %v)", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	return cp
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func restFor(url, token string) *rest.Config {
	return &rest.Config{Host: url, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{Insecure: true}, QPS: 100, Burst: 200}
}

// apply creates every object of a multi-document YAML stream, as
// `kubectl apply` would on an empty cluster.
func apply(ctx context.Context, cfg *rest.Config, manifests []byte) error {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifests), 4096)
	for {
		var obj unstructured.Unstructured
		if err := dec.Decode(&obj.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("decode manifests: %w", err)
		}
		if len(obj.Object) == 0 {
			continue
		}
		gvk := obj.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return fmt.Errorf("map %s: %w", gvk, err)
		}
		if _, err := dyn.Resource(m.Resource).Namespace(obj.GetNamespace()).Create(ctx, &obj, metav1.CreateOptions{FieldValidation: "Strict"}); err != nil {
			return fmt.Errorf("create %s %s: %w", gvk.Kind, obj.GetName(), err)
		}
	}
}
