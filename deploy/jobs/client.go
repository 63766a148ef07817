package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/sluicehq/sluice/deploy/api/v1alpha1"
)

// ErrNotFound is returned for a job the cache does not hold.
var ErrNotFound = errors.New("jobs: not found")

// Client reads SluiceJobs of one namespace ("" for all) from its cache and
// writes them to the API server.
type Client struct {
	ns      string
	res     dynamic.NamespaceableResourceInterface
	factory dynamicinformer.DynamicSharedInformerFactory
	store   cache.Store
	synced  cache.InformerSynced
	stop    context.CancelFunc
}

// New returns a client; Start fills its cache.
func New(cfg *rest.Config, namespace string) (*Client, error) {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("jobs: client: %w", err)
	}
	f := dynamicinformer.NewFilteredDynamicSharedInformerFactory(dyn, 0, namespace, nil)
	inf := f.ForResource(v1alpha1.GroupVersionResource).Informer()
	// The cache keeps typed jobs: a List converts nothing.
	if err := inf.SetTransform(func(obj any) (any, error) {
		if u, ok := obj.(*unstructured.Unstructured); ok {
			return v1alpha1.FromUnstructured(u)
		}
		return obj, nil
	}); err != nil {
		return nil, fmt.Errorf("jobs: informer: %w", err)
	}
	return &Client{ns: namespace, res: dyn.Resource(v1alpha1.GroupVersionResource), factory: f, store: inf.GetStore(), synced: inf.HasSynced}, nil
}

// Start starts the watch and waits until the cache holds every job.
func (c *Client) Start(ctx context.Context) error {
	wctx, cancel := context.WithCancel(context.Background())
	c.stop = cancel
	c.factory.Start(wctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), c.synced) {
		return fmt.Errorf("jobs: cache did not sync: %w", ctx.Err())
	}
	return nil
}

// Stop ends the watch.
func (c *Client) Stop() {
	if c.stop != nil {
		c.stop()
		c.factory.Shutdown()
	}
}

func (c *Client) namespace(ns string) string {
	if ns == "" {
		ns = c.ns
	}
	if ns == "" {
		ns = "default"
	}
	return ns
}

// Get returns a job from the cache. The result is shared: do not modify it.
func (c *Client) Get(namespace, name string) (*v1alpha1.SluiceJob, error) {
	obj, ok, err := c.store.GetByKey(c.namespace(namespace) + "/" + name)
	if err != nil {
		return nil, fmt.Errorf("jobs: get %s: %w", name, err)
	}
	if !ok {
		return nil, fmt.Errorf("jobs: get %s: %w", name, ErrNotFound)
	}
	return obj.(*v1alpha1.SluiceJob), nil
}

// List returns the cached jobs whose labels match selector (kubectl's
// syntax, e.g. "sluice.dev/tenant=acme"; "" for all), sorted by namespace
// and name. The results are shared: do not modify them.
func (c *Client) List(selector string) ([]*v1alpha1.SluiceJob, error) {
	sel, err := labels.Parse(selector)
	if err != nil {
		return nil, fmt.Errorf("jobs: selector %q: %w", selector, err)
	}
	var out []*v1alpha1.SluiceJob
	for _, obj := range c.store.List() {
		j := obj.(*v1alpha1.SluiceJob)
		if sel.Matches(labels.Set(j.Labels)) {
			out = append(out, j)
		}
	}
	slices.SortFunc(out, func(a, b *v1alpha1.SluiceJob) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return out, nil
}

// History returns a job's recorded transitions, oldest first.
func (c *Client) History(namespace, name string) ([]v1alpha1.Transition, error) {
	j, err := c.Get(namespace, name)
	if err != nil {
		return nil, err
	}
	return j.Status.History, nil
}

// FromFile makes a SluiceJob from a job file: its name is the file's `job:`,
// files are the files it refers to (schema_file), by their path relative
// to the job file.
func FromFile(namespace string, jobFile []byte, files map[string]string, lbls map[string]string) (*v1alpha1.SluiceJob, error) {
	var head struct {
		Job string `yaml:"job"`
	}
	if err := yaml.Unmarshal(jobFile, &head); err != nil || head.Job == "" {
		return nil, fmt.Errorf("jobs: the job file has no job: name (%v)", err)
	}
	return &v1alpha1.SluiceJob{
		ObjectMeta: metav1.ObjectMeta{Name: head.Job, Namespace: namespace, Labels: lbls},
		Spec:       v1alpha1.Spec{Job: string(jobFile), Files: files},
	}, nil
}

// Apply creates a job, or replaces the spec and labels of an existing one
// (a new spec is an update: the operator drains the workers first).
func (c *Client) Apply(ctx context.Context, j *v1alpha1.SluiceJob) error {
	ns := c.namespace(j.Namespace)
	j.Namespace = ns
	if !slices.Contains(j.Finalizers, v1alpha1.Finalizer) {
		// Created with the operator's finalizer, the operator need not
		// add it: one write less per job created.
		j.Finalizers = append(slices.Clone(j.Finalizers), v1alpha1.Finalizer)
	}
	u, err := v1alpha1.ToUnstructured(j)
	if err != nil {
		return err
	}
	res := c.res.Namespace(ns)
	_, err = res.Create(ctx, u, metav1.CreateOptions{FieldValidation: "Strict"})
	if !apierrors.IsAlreadyExists(err) {
		if err != nil {
			return fmt.Errorf("jobs: create %s/%s: %w", ns, j.Name, err)
		}
		return nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": j.Labels}, "spec": u.Object["spec"]})
	if err != nil {
		return fmt.Errorf("jobs: apply %s/%s: %w", ns, j.Name, err)
	}
	if _, err := res.Patch(ctx, j.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldValidation: "Strict"}); err != nil {
		return fmt.Errorf("jobs: update %s/%s: %w", ns, j.Name, err)
	}
	return nil
}

// Suspend drains a job and scales it to zero, keeping its checkpoints and
// offsets.
func (c *Client) Suspend(ctx context.Context, namespace, name string) error {
	return c.setSuspend(ctx, namespace, name, true)
}

// Resume runs a suspended job again from where it stopped.
func (c *Client) Resume(ctx context.Context, namespace, name string) error {
	return c.setSuspend(ctx, namespace, name, false)
}

func (c *Client) setSuspend(ctx context.Context, namespace, name string, suspend bool) error {
	ns := c.namespace(namespace)
	patch := fmt.Appendf(nil, `{"spec":{"suspend":%t}}`, suspend)
	if _, err := c.res.Namespace(ns).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("jobs: set suspend=%t on %s/%s: %w", suspend, ns, name, err)
	}
	return nil
}

// Delete removes a job; the operator drains it before its objects go.
func (c *Client) Delete(ctx context.Context, namespace, name string) error {
	ns := c.namespace(namespace)
	if err := c.res.Namespace(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		return fmt.Errorf("jobs: delete %s/%s: %w", ns, name, err)
	}
	return nil
}
