package kubetest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
)

// NodeName is the node the Kubelet binds its pods to.
const NodeName = "local"

// KubeletOptions configure a Kubelet.
type KubeletOptions struct {
	// Namespace whose pods it runs.
	Namespace string
	// Dir holds each pod's volumes, working directory and log.
	Dir string
	// Image returns the command line an image stands for; the container's
	// args follow it.
	Image func(image string) ([]string, error)
	// Env is added to every container's environment (PATH, say).
	Env []string
	// Pretend starts no process: each pod is bound, reported Running and
	// Ready at once, and removed when deleted. It lets a benchmark of the
	// control plane run more jobs than this machine could run workers;
	// Image is then not called.
	Pretend bool
}

// Kubelet plays the kubelet for one namespace: it binds each new Pod to
// NodeName, gives it its own loopback address as its pod IP, writes its
// ConfigMap, Secret and emptyDir volumes under Dir, starts its first
// container as a local process (args and working directory translated to
// those volumes, environment from values, the downward API and Secrets),
// reports Running and, from the readiness probe's HTTP GET, Ready through
// pods/status; restarts a container that exits, counting restarts and
// reporting CrashLoopBackOff while it waits; and on deletion sends SIGTERM,
// then SIGKILL after the grace period, and removes the Pod.
//
// Its one liberty: a pod shares this machine's network, so a job file
// mounted from a ConfigMap has its metrics listen address set to the pod
// IP (its admin address off), as a pod's own network namespace would make
// ":9090" mean.
type Kubelet struct {
	o    KubeletOptions
	kube kubernetes.Interface
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu     sync.Mutex // guards pods, nextIP
	pods   map[types.UID]*podRun
	nextIP int
}

// StartKubelet starts a Kubelet; Stop ends it and every process it runs.
func StartKubelet(cfg *rest.Config, o KubeletOptions) (*Kubelet, error) {
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	k := &Kubelet{o: o, kube: kube, stop: cancel, pods: map[types.UID]*podRun{}}
	f := informers.NewSharedInformerFactoryWithOptions(kube, 0, informers.WithNamespace(o.Namespace))
	inf := f.Core().V1().Pods().Informer()
	_, err = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { k.observe(ctx, obj, false) },
		UpdateFunc: func(_, obj any) { k.observe(ctx, obj, false) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			k.observe(ctx, obj, true)
		},
	})
	if err != nil {
		cancel()
		return nil, err
	}
	f.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())
	k.wg.Go(func() {
		<-ctx.Done()
		f.Shutdown()
	})
	return k, nil
}

// Stop kills every pod's process at once (a node lost, not a drain) and
// waits for them.
func (k *Kubelet) Stop() {
	k.stop()
	k.mu.Lock()
	for _, p := range k.pods {
		p.kill()
	}
	k.mu.Unlock()
	k.wg.Wait()
}

// Processes is the number of pod processes running now.
func (k *Kubelet) Processes() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	for _, p := range k.pods {
		if p.running() {
			n++
		}
	}
	return n
}

func (k *Kubelet) observe(ctx context.Context, obj any, deleted bool) {
	pod, ok := obj.(*corev1.Pod)
	if !ok || ctx.Err() != nil {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	p := k.pods[pod.UID]
	if p == nil {
		if deleted || pod.DeletionTimestamp != nil {
			return
		}
		k.nextIP++
		p = &podRun{k: k, pod: pod.DeepCopy(), ip: fmt.Sprintf("127.10.%d.%d", k.nextIP/250, k.nextIP%250+1), terminate: make(chan struct{})}
		k.pods[pod.UID] = p
		k.wg.Go(func() {
			p.run(ctx)
			k.mu.Lock()
			delete(k.pods, pod.UID)
			k.mu.Unlock()
		})
		return
	}
	if deleted || pod.DeletionTimestamp != nil {
		p.stopOnce.Do(func() {
			if pod.Spec.TerminationGracePeriodSeconds != nil {
				p.grace = time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
			}
			close(p.terminate)
		})
	}
}

// podRun is one pod's lifecycle, run by one goroutine.
type podRun struct {
	k         *Kubelet
	pod       *corev1.Pod
	ip        string
	terminate chan struct{}
	stopOnce  sync.Once
	grace     time.Duration

	mu   sync.Mutex // guards proc
	proc *exec.Cmd
}

func (p *podRun) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.proc != nil
}

func (p *podRun) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc != nil {
		_ = p.proc.Process.Kill()
	}
}

func (p *podRun) logf(format string, args ...any) {
	f, err := os.OpenFile(filepath.Join(p.k.o.Dir, p.pod.Name+".kubelet.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, time.Now().Format("15:04:05.000 ")+format+"\n", args...)
}

func (p *podRun) run(ctx context.Context) {
	pods := p.k.kube.CoreV1().Pods(p.pod.Namespace)
	if p.pod.Spec.NodeName == "" {
		err := pods.Bind(ctx, &corev1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: p.pod.Name, UID: p.pod.UID},
			Target:     corev1.ObjectReference{Kind: "Node", Name: NodeName},
		}, metav1.CreateOptions{})
		if err != nil {
			p.logf("bind: %v", err)
			return
		}
	}
	if p.k.o.Pretend {
		p.status(ctx, 0, "", true, true)
		select {
		case <-p.terminate:
			p.remove(ctx)
		case <-ctx.Done():
		}
		return
	}
	dir := filepath.Join(p.k.o.Dir, p.pod.Name+"-"+string(p.pod.UID)[:8])
	restarts := int32(0)
	for {
		cmd, ready, err := p.prepare(ctx, dir)
		if err != nil {
			p.logf("prepare: %v", err)
			p.status(ctx, restarts, "CreateContainerConfigError", false, false)
			select {
			case <-time.After(time.Second):
				continue
			case <-p.terminate:
				p.remove(ctx)
				return
			case <-ctx.Done():
				return
			}
		}
		exited := make(chan struct{})
		if err := cmd.Start(); err != nil {
			p.logf("start: %v", err)
			close(exited)
		} else {
			p.mu.Lock()
			p.proc = cmd
			p.mu.Unlock()
			go func() {
				cmd.Wait()
				close(exited)
			}()
		}
		p.status(ctx, restarts, "", true, false)
		probeDone := make(chan struct{})
		go p.probe(ctx, ready, restarts, exited, probeDone)
		select {
		case <-exited:
			<-probeDone
			p.mu.Lock()
			p.proc = nil
			p.mu.Unlock()
			restarts++
			p.logf("container exited (%v); restart %d", cmd.ProcessState, restarts)
			p.status(ctx, restarts, "CrashLoopBackOff", false, false)
			select {
			case <-time.After(min(time.Duration(restarts)*500*time.Millisecond, 3*time.Second)):
			case <-p.terminate:
				p.remove(ctx)
				return
			case <-ctx.Done():
				return
			}
		case <-p.terminate:
			if cmd.Process != nil {
				_ = cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-exited:
				case <-time.After(p.grace):
					p.logf("grace period %s over: SIGKILL", p.grace)
					_ = cmd.Process.Kill()
					<-exited
				}
			}
			<-probeDone
			p.mu.Lock()
			p.proc = nil
			p.mu.Unlock()
			p.logf("container stopped (%v)", cmd.ProcessState)
			p.remove(ctx)
			return
		case <-ctx.Done():
			if cmd.Process != nil {
				_ = cmd.Process.Kill()
				<-exited
			}
			<-probeDone
			return
		}
	}
}

// remove deletes the pod for good, as the kubelet does once its
// containers have stopped.
func (p *podRun) remove(ctx context.Context) {
	zero := int64(0)
	err := p.k.kube.CoreV1().Pods(p.pod.Namespace).Delete(ctx, p.pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &p.pod.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		p.logf("delete: %v", err)
	}
}

// probe reports readiness from ready (an URL; "" means ready once running)
// until the process exits.
func (p *podRun) probe(ctx context.Context, url string, restarts int32, exited, done chan struct{}) {
	defer close(done)
	hc := &http.Client{Timeout: time.Second}
	last := false
	t := time.NewTicker(300 * time.Millisecond)
	defer t.Stop()
	for {
		ok := url == ""
		if !ok {
			if resp, err := hc.Get(url); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				ok = resp.StatusCode == http.StatusOK
			}
		}
		if ok != last {
			select {
			case <-exited:
				return
			default:
			}
			p.status(ctx, restarts, "", true, ok)
			last = ok
		}
		select {
		case <-exited:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// status writes the pod's status: running or waiting (reason), ready.
func (p *podRun) status(ctx context.Context, restarts int32, waiting string, running, ready bool) {
	pods := p.k.kube.CoreV1().Pods(p.pod.Namespace)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		pod, err := pods.Get(ctx, p.pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if pod.UID != p.pod.UID {
			return nil
		}
		now := metav1.Now()
		cs := corev1.ContainerStatus{Name: pod.Spec.Containers[0].Name, Image: pod.Spec.Containers[0].Image, RestartCount: restarts, Ready: ready}
		if running {
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: now}
			cs.Started = &running
		} else {
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: waiting}
		}
		cond := corev1.ConditionFalse
		if ready {
			cond = corev1.ConditionTrue
		}
		pod.Status.Phase = corev1.PodRunning
		pod.Status.PodIP, pod.Status.HostIP = p.ip, "127.0.0.1"
		pod.Status.PodIPs = []corev1.PodIP{{IP: p.ip}}
		pod.Status.ContainerStatuses = []corev1.ContainerStatus{cs}
		pod.Status.Conditions = []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: cond, LastTransitionTime: now},
			{Type: corev1.PodReady, Status: cond, LastTransitionTime: now},
		}
		if pod.Status.StartTime == nil {
			pod.Status.StartTime = &now
		}
		_, err = pods.UpdateStatus(ctx, pod, metav1.UpdateOptions{})
		return err
	})
	if err != nil && ctx.Err() == nil && !apierrors.IsNotFound(err) {
		p.logf("status: %v", err)
	}
}

// prepare writes the pod's volumes and returns its container's command and
// readiness URL.
func (p *podRun) prepare(ctx context.Context, dir string) (*exec.Cmd, string, error) {
	pod := p.pod
	c := pod.Spec.Containers[0]
	vols := map[string]string{}
	for _, v := range pod.Spec.Volumes {
		at := filepath.Join(dir, "volumes", v.Name)
		if err := os.MkdirAll(at, 0o755); err != nil {
			return nil, "", err
		}
		vols[v.Name] = at
		var data map[string]string
		var items []corev1.KeyToPath
		switch {
		case v.ConfigMap != nil:
			cm, err := p.k.kube.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, v.ConfigMap.Name, metav1.GetOptions{})
			if err != nil {
				return nil, "", fmt.Errorf("configmap %s: %w", v.ConfigMap.Name, err)
			}
			data, items = cm.Data, v.ConfigMap.Items
		case v.Secret != nil:
			s, err := p.k.kube.CoreV1().Secrets(pod.Namespace).Get(ctx, v.Secret.SecretName, metav1.GetOptions{})
			if err != nil {
				return nil, "", fmt.Errorf("secret %s: %w", v.Secret.SecretName, err)
			}
			data = map[string]string{}
			for k, b := range s.Data {
				data[k] = string(b)
			}
			items = v.Secret.Items
		}
		if items == nil {
			for k := range data {
				items = append(items, corev1.KeyToPath{Key: k, Path: k})
			}
		}
		for _, it := range items {
			f := filepath.Join(at, it.Path)
			if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
				return nil, "", err
			}
			content := data[it.Key]
			if v.ConfigMap != nil && strings.HasSuffix(it.Path, ".yaml") {
				content = p.podNetwork(content, c)
			}
			if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
				return nil, "", err
			}
		}
	}
	translate := func(s string) string {
		for _, m := range c.VolumeMounts {
			if at, ok := vols[m.Name]; ok && (s == m.MountPath || strings.HasPrefix(s, m.MountPath+"/")) {
				return at + strings.TrimPrefix(s, m.MountPath)
			}
		}
		return s
	}
	argv, err := p.k.o.Image(c.Image)
	if err != nil {
		return nil, "", err
	}
	for _, a := range append(slices(c.Command), c.Args...) {
		argv = append(argv, translate(a))
	}
	env := append(os.Environ(), p.k.o.Env...)
	for _, e := range c.Env {
		v := e.Value
		if f := e.ValueFrom; f != nil {
			switch {
			case f.FieldRef != nil:
				v = map[string]string{"metadata.name": pod.Name, "metadata.namespace": pod.Namespace, "status.podIP": p.ip}[f.FieldRef.FieldPath]
			case f.SecretKeyRef != nil:
				s, err := p.k.kube.CoreV1().Secrets(pod.Namespace).Get(ctx, f.SecretKeyRef.Name, metav1.GetOptions{})
				if err != nil {
					return nil, "", fmt.Errorf("env %s: %w", e.Name, err)
				}
				b, ok := s.Data[f.SecretKeyRef.Key]
				if !ok {
					return nil, "", fmt.Errorf("env %s: secret %s has no key %s", e.Name, f.SecretKeyRef.Name, f.SecretKeyRef.Key)
				}
				v = string(b)
			}
		}
		env = append(env, e.Name+"="+v)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Env = env
	cmd.Dir = dir
	if c.WorkingDir != "" {
		cmd.Dir = translate(c.WorkingDir)
	}
	if err := os.MkdirAll(cmd.Dir, 0o755); err != nil {
		return nil, "", err
	}
	logf, err := os.OpenFile(filepath.Join(p.k.o.Dir, pod.Name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, "", err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	ready := ""
	if pr := c.ReadinessProbe; pr != nil && pr.HTTPGet != nil {
		ready = "http://" + p.ip + ":" + strconv.Itoa(containerPort(c, pr.HTTPGet.Port.String())) + pr.HTTPGet.Path
	}
	return cmd, ready, nil
}

func slices(s []string) []string { return append([]string(nil), s...) }

// containerPort resolves a probe's port, by name or number.
func containerPort(c corev1.Container, port string) int {
	for _, p := range c.Ports {
		if p.Name == port {
			return int(p.ContainerPort)
		}
	}
	n, _ := strconv.Atoi(port)
	return n
}

// podNetwork points a job file's metrics listen address at the pod IP, at
// the container's metrics port, and turns its admin address off: on this
// shared network two pods cannot both listen on ":9090".
func (p *podRun) podNetwork(content string, c corev1.Container) string {
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(content), &root); err != nil || len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return content
	}
	m := root.Content[0]
	isJob := false
	var metrics *yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		switch m.Content[i].Value {
		case "job":
			isJob = true
		case "metrics":
			metrics = m.Content[i+1]
		}
	}
	if !isJob {
		return content
	}
	port := containerPort(c, "metrics")
	if port == 0 {
		return content
	}
	if metrics == nil || metrics.Kind != yaml.MappingNode {
		metrics = &yaml.Node{Kind: yaml.MappingNode}
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "metrics"}, metrics)
	}
	set := func(key, value string) {
		for i := 0; i+1 < len(metrics.Content); i += 2 {
			if metrics.Content[i].Value == key {
				metrics.Content[i+1] = &yaml.Node{Kind: yaml.ScalarNode, Value: value, Style: yaml.DoubleQuotedStyle}
				return
			}
		}
		metrics.Content = append(metrics.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, &yaml.Node{Kind: yaml.ScalarNode, Value: value, Style: yaml.DoubleQuotedStyle})
	}
	metrics.Style = 0
	set("listen", p.ip+":"+strconv.Itoa(port))
	set("admin_listen", "off")
	out, err := yaml.Marshal(&root)
	if err != nil {
		return content
	}
	return string(out)
}
