package kubetest

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
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// EtcdInstall is how to install etcd when it is missing.
const EtcdInstall = "apt-get update && apt-get install -y etcd-server"

// ControlPlane is a running etcd, kube-apiserver and optionally
// kube-controller-manager.
type ControlPlane struct {
	URL        string
	AdminToken string
	// Kubeconfig is a kubeconfig file for the admin token.
	Kubeconfig string
	dir        string
	procs      []*process
}

// Options of Start.
type Options struct {
	// Controllers, when not empty, runs kube-controller-manager with these
	// controllers (1.34 names, e.g. statefulset-controller).
	Controllers []string
	// Log receives progress lines (a cold build takes minutes).
	Log io.Writer
	// Users are further static tokens: token to user name (no groups), for
	// tests of what RBAC grants that user.
	Users map[string]string
}

// Start starts a control plane whose files live under dir, waiting until
// the API server is ready. Stop ends it.
func Start(dir string, o Options) (cp *ControlPlane, err error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	etcd, err := exec.LookPath("etcd")
	if err != nil {
		return nil, fmt.Errorf("kubetest: etcd is not installed: %s", EtcdInstall)
	}
	kapi, err := Binary("kube-apiserver", o.Log)
	if err != nil {
		return nil, err
	}
	var kcm string
	if len(o.Controllers) > 0 {
		if kcm, err = Binary("kube-controller-manager", o.Log); err != nil {
			return nil, err
		}
	}
	cp = &ControlPlane{dir: dir}
	defer func() {
		if err != nil {
			cp.Stop()
		}
	}()
	clientPort, peerPort := freePort(), freePort()
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	if err := cp.start("etcd", etcd,
		"--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peerPort),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peerPort),
		"--initial-cluster", fmt.Sprintf("default=http://127.0.0.1:%d", peerPort),
	); err != nil {
		return nil, err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	cp.AdminToken = "admin-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	tokens := cp.AdminToken + ",admin,admin,system:masters\n"
	for token, user := range o.Users {
		tokens += token + "," + user + "," + user + "\n"
	}
	for name, b := range map[string][]byte{
		"sa.key":     pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}),
		"sa.pub":     pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}),
		"tokens.csv": []byte(tokens),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return nil, err
		}
	}
	port := freePort()
	cp.URL = fmt.Sprintf("https://127.0.0.1:%d", port)
	if err := cp.start("kube-apiserver", kapi,
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
	); err != nil {
		return nil, err
	}
	if err := cp.waitReady(90 * time.Second); err != nil {
		return nil, err
	}
	cp.Kubeconfig = filepath.Join(dir, "kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: %q, insecure-skip-tls-verify: true}}]
users: [{name: admin, user: {token: %q}}]
contexts: [{name: test, context: {cluster: test, user: admin}}]
current-context: test
`, cp.URL, cp.AdminToken)
	if err := os.WriteFile(cp.Kubeconfig, []byte(kc), 0o600); err != nil {
		return nil, err
	}
	if kcm != "" {
		if err := cp.start("kube-controller-manager", kcm,
			"--kubeconfig="+cp.Kubeconfig, "--leader-elect=false", "--secure-port=0",
			"--service-account-private-key-file="+filepath.Join(dir, "sa.key"),
			"--controllers="+strings.Join(o.Controllers, ","),
			"--concurrent-statefulset-syncs=10",
			// The default 20 requests/s would take minutes to create the
			// pods of a fleet of a thousand jobs.
			"--kube-api-qps=200", "--kube-api-burst=400",
		); err != nil {
			return nil, err
		}
	}
	return cp, nil
}

// REST is a client config for the admin token.
func (cp *ControlPlane) REST() *rest.Config {
	return &rest.Config{Host: cp.URL, BearerToken: cp.AdminToken, TLSClientConfig: rest.TLSClientConfig{Insecure: true}, QPS: 200, Burst: 400}
}

// Stop ends every process, in reverse order of start.
func (cp *ControlPlane) Stop() {
	for i := len(cp.procs) - 1; i >= 0; i-- {
		cp.procs[i].stop()
	}
}

// Logs returns the tail of each process's log, for a failing test.
func (cp *ControlPlane) Logs(tail int) string {
	var b strings.Builder
	for _, p := range cp.procs {
		data, _ := os.ReadFile(p.log)
		if len(data) > tail {
			data = data[len(data)-tail:]
		}
		fmt.Fprintf(&b, "--- %s log tail:\n%s\n", p.name, data)
	}
	return b.String()
}

func (cp *ControlPlane) waitReady(within time.Duration) error {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	deadline := time.Now().Add(within)
	for {
		req, _ := http.NewRequest(http.MethodGet, cp.URL+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+cp.AdminToken)
		resp, err := hc.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kubetest: kube-apiserver not ready after %s (last error %v)\n%s", within, err, cp.Logs(3000))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// process is a child process whose output goes to a log file.
type process struct {
	name, log string
	cmd       *exec.Cmd
	done      chan struct{}
	once      sync.Once
}

func (cp *ControlPlane) start(name, bin string, args ...string) error {
	logPath := filepath.Join(cp.dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// Killed with the test process, should it die without Stop.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("kubetest: start %s: %w", name, err)
	}
	p := &process{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		f.Close()
		close(p.done)
	}()
	cp.procs = append(cp.procs, p)
	return nil
}

func (p *process) stop() {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("kubetest: no free port: %v", err))
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Binary returns the cached control-plane binary name (kube-apiserver or
// kube-controller-manager), building it first when absent. $SLUICE_KUBE_APISERVER
// or $SLUICE_KUBE_CONTROLLER_MANAGER name a binary to use instead.
func Binary(name string, log io.Writer) (string, error) {
	env := "SLUICE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
	if p := os.Getenv(env); p != "" {
		return p, nil
	}
	script, err := buildScript()
	if err != nil {
		return "", err
	}
	start := time.Now()
	cmd := exec.Command("sh", script)
	cmd.Env = append(os.Environ(), "KUBE_COMPONENT="+name)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	fmt.Fprintf(log, "kubetest: %s from %s (built once per machine, minutes when cold)\n", name, script)
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("kubetest: %s is missing and could not be built: %v\n%s\nbuild it with: KUBE_COMPONENT=%s sh scaler/testdata/build-kube-apiserver.sh (needs the Go module proxy)", name, err, stderr.String(), name)
	}
	if d := time.Since(start); d > 10*time.Second {
		fmt.Fprintf(log, "kubetest: %s built in %s\n", name, d.Round(time.Second))
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], nil
}

// buildScript finds scaler/testdata/build-kube-apiserver.sh from the module
// root above the working directory.
func buildScript() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "scaler", "testdata", "build-kube-apiserver.sh"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("kubetest: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Apply creates every object of a multi-document YAML stream, as `kubectl
// create -f` would.
func Apply(ctx context.Context, cfg *rest.Config, manifests []byte) error {
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
