package app

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/checkpoint/storetest"
)

// TestCrashRecoveryOnEveryStore runs the SIGKILL and drain delivery tests
// with the checkpoint store on S3 (gofakes3 over HTTP in this process) and on
// Azure Blob (Azurite, a child process), both on loopback and reached by the
// `sluice run` processes through the real SDKs, with credentials from the
// environment as in a pod. The local-directory store is
// TestCrashRecoverySIGKILL's and TestDrainExactlyOnce's own; GCS is covered
// by the checkpoint package's conformance suite. Fewer records and kills than
// those tests: the property is the same, and each store adds its own run.
func TestCrashRecoveryOnEveryStore(t *testing.T) {
	stores := []struct {
		name  string
		start func(t *testing.T) string // starts the store, returns the store URL
	}{
		{"s3", func(t *testing.T) string {
			fake := storetest.StartS3(t, "sluice-ckpt")
			for k, v := range storetest.S3Env() {
				t.Setenv(k, v)
			}
			return storetest.S3URL(fake.Addr, "sluice-ckpt", "prod")
		}},
		{"azblob", func(t *testing.T) string {
			az := storetest.StartAzurite(t, "sluice-ckpt")
			for k, v := range storetest.AzureEnv(az.Addr) {
				t.Setenv(k, v)
			}
			return "azblob://sluice-ckpt/prod"
		}},
	}
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			t.Run("sigkill", func(t *testing.T) {
				store := st.start(t)
				c := newCluster(t, 4, "1s")
				c.useStore(store)
				testCrashRecovery(t, c, 3)
				c.checkpointsIn(store, "crash-0")
			})
			t.Run("drain", func(t *testing.T) {
				store := st.start(t)
				c := newCluster(t, 6, "10s")
				c.useStore(store)
				testDrainExactlyOnce(t, c, 100000)
				c.checkpointsIn(store, "drain-0")
			})
			t.Run("state", func(t *testing.T) {
				store := st.start(t)
				r := newWindowRun(t)
				r.c.useStore(store)
				testStateRestore(t, r, store)
			})
		})
	}
}

// testStateRestore: a windowed job checkpointing to the store at url is
// killed with SIGKILL while its windows are open, and restarted: its tasks'
// open windows come back from their state snapshots in that store (the
// checkpoint names them, and they are there), so every window is emitted
// once with its exact count. Had the state not been restored, the windows
// open at the kill would be emitted with the records after it only.
func testStateRestore(t *testing.T, r *windowRun, url string) {
	c := r.c
	stopProducing := r.produceEvery(200, 25*time.Millisecond)
	w := c.start("state-0")
	// Every partition has committed an offset past its first record: the
	// window of the last record before it is open, and only the state in
	// the store holds its records, so the kill comes mid-window.
	adm := kadm.NewClient(c.prod)
	deadline := time.Now().Add(time.Minute)
	for committed := 0; committed < windowTopicP; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d partitions committed after a minute; logs:\n%s", committed, windowTopicP, w.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
		offs, err := adm.FetchOffsets(context.Background(), "e2e")
		if err != nil {
			continue // the group does not exist yet
		}
		committed = 0
		offs.Each(func(o kadm.OffsetResponse) {
			if o.At > 0 {
				committed++
			}
		})
	}
	c.kill(w)
	objects := c.stateIn(url, "state-0")

	w = c.start("state-0")
	time.Sleep(time.Second)
	stopProducing()
	r.waitTable(time.Minute)
	c.drain(w)
	r.exact(w.logs.String())
	t.Logf("%d records, %d windows, a SIGKILL mid-window: the state of %d tasks (%d objects) came back from the store; every window once, exact",
		r.next, len(r.want), windowTopicP, objects)
}

// stateIn checks that pod's last checkpoint in the store at url names a
// state snapshot for every task and that the snapshots' objects are there.
// It returns how many state objects the store holds.
func (c *cluster) stateIn(url, pod string) int {
	c.t.Helper()
	ctx := context.Background()
	cp, err := checkpoint.Open(ctx, url)
	if err != nil {
		c.t.Fatal(err)
	}
	defer cp.Close()
	latest, key, err := cp.LoadLatest(ctx, "e2e", pod)
	if err != nil {
		c.t.Fatalf("no checkpoint of %s in %s: %v", pod, url, err)
	}
	st := checkpoint.NewState(cp.Store())
	for _, ts := range latest.Tasks {
		if ts.State == "" {
			c.t.Fatalf("checkpoint %s: task %v has no state", key, ts.Task)
		}
		objs, err := st.Objects(ctx, ts.State)
		if err != nil {
			c.t.Fatalf("checkpoint %s: task %v: state %s: %v", key, ts.Task, ts.State, err)
		}
		for _, o := range objs {
			if _, err := cp.Store().Get(ctx, o); err != nil {
				c.t.Fatalf("checkpoint %s: task %v: state object: %v", key, ts.Task, err)
			}
		}
	}
	keys, err := cp.Store().List(ctx, "")
	if err != nil {
		c.t.Fatal(err)
	}
	n := 0
	for _, k := range keys {
		if strings.Contains(k, "/e2e/state/") {
			n++
		}
	}
	if len(latest.Tasks) != windowTopicP || n == 0 {
		c.t.Fatalf("checkpoint %s: %d tasks, the store %d state objects; want %d tasks with state", key, len(latest.Tasks), n, windowTopicP)
	}
	return n
}

// useStore points the job file's checkpoint store at url.
func (c *cluster) useStore(url string) {
	c.t.Helper()
	b, err := os.ReadFile(c.job)
	if err != nil {
		c.t.Fatal(err)
	}
	old := "store: file://" + c.dir + "/ckpt,"
	if !strings.Contains(string(b), old) {
		c.t.Fatalf("job file has no %q to replace:\n%s", old, b)
	}
	if err := os.WriteFile(c.job, []byte(strings.Replace(string(b), old, "store: "+quoteYAML(url)+",", 1)), 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// quoteYAML quotes s as a YAML double-quoted scalar (a URL with & and ?).
func quoteYAML(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }

// checkpointsIn checks that pod's checkpoints are in the store at url: the
// workers wrote to it, not to a default.
func (c *cluster) checkpointsIn(url, pod string) {
	c.t.Helper()
	cp, err := checkpoint.Open(context.Background(), url)
	if err != nil {
		c.t.Fatal(err)
	}
	defer cp.Close()
	latest, key, err := cp.LoadLatest(context.Background(), "e2e", pod)
	if err != nil {
		c.t.Fatalf("no checkpoint of %s in %s: %v", pod, url, err)
	}
	var offsets int64
	for _, ts := range latest.Tasks {
		offsets += ts.Offset
	}
	if offsets != c.produced() {
		c.t.Errorf("the last checkpoint %s holds offsets summing to %d, want every record produced (%d)", key, offsets, c.produced())
	}
	c.t.Logf("last checkpoint in the store: %s, seq %d, %d tasks", key, latest.Seq, len(latest.Tasks))
}

// TestRenderWorkloadIdentity: the job file's workload_identity block reaches
// the rendered manifests as each cloud's service-account annotation and
// Azure's pod label.
func TestRenderWorkloadIdentity(t *testing.T) {
	dir := t.TempDir()
	schema, err := os.ReadFile(filepath.Join(repoRoot(t), "examples/schemas/traffic.avsc"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "traffic.avsc"), schema, 0o644)
	job := filepath.Join(dir, "job.yaml")
	os.WriteFile(job, []byte(`job: acme
kafka: {brokers: [kafka:9092]}
checkpoint: {store: "s3://acme-ckpt/sluice?region=eu-west-1"}
workload_identity:
  aws_role_arn: arn:aws:iam::123456789012:role/sluice
  azure_client_id: 00000000-0000-0000-0000-000000000001
pipelines:
  - name: all
    source: {kafka: {topics: [t]}}
    format: {avro: {schema_file: traffic.avsc}}
    sql: SELECT src_ip FROM input
    sinks:
      - file: {path: out.jsonl, format: json}
`), 0o644)
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"render", job}, &stdout, &stderr); code != 0 {
		t.Fatalf("render: exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{
		"eks.amazonaws.com/role-arn: arn:aws:iam::123456789012:role/sluice",
		"azure.workload.identity/client-id: 00000000-0000-0000-0000-000000000001",
		`azure.workload.identity/use: "true"`,
		"serviceAccountName: acme\n",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("rendered manifests lack %q:\n%s", want, stdout.String())
		}
	}
	if strings.Contains(stdout.String(), "iam.gke.io/gcp-service-account") {
		t.Error("a GKE annotation was rendered though none was asked for")
	}
}
