package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// JobSpec is what Render needs to know about a job. cmd/sluice fills it from
// the job file; JobYAML is the file itself, shipped verbatim in a ConfigMap.
type JobSpec struct {
	// Job is the job name: StatefulSet, Service and Kafka consumer group.
	Job string
	// Namespace of every object. Default "default".
	Namespace string
	// Image is the sluice image, for workers and the coordinator.
	Image string
	// Worker is the machine type, e.g. n2d-standard-1: *-standard-N gives N
	// vCPU and 4N GiB, *-highmem-N N vCPU and 8N GiB, *-highcpu-N N vCPU and
	// N GiB.
	Worker string
	// MinWorkers and MaxWorkers bound the coordinator. Defaults 1 and 50.
	MinWorkers, MaxWorkers int
	// MetricsPort serves /metrics, /healthz and /readyz. Default 9090.
	MetricsPort int
	// NoMetrics says the job file has `metrics.listen: off`: the pods then
	// expose no port, carry no Prometheus annotations and have no probes
	// (there is no endpoint to probe, and the image has no shell for an exec
	// probe); a pod is ready once it runs.
	NoMetrics bool
	// Env names the environment variables the job file uses (${NAME}). Each
	// is set in the workers from key NAME of the Secret EnvSecretName(Job),
	// which the user creates; Render writes no secret values.
	Env []string
	// SecretFiles are the files the job reads secrets from (password_file,
	// token_file). Each is mounted read-only at its path from the Secret
	// FilesSecretName(Job), key SecretFileKey(path); relative paths are
	// relative to the workers' working directory, /var/lib/sluice.
	SecretFiles []string
	// DrainDeadline is how long a pod may drain on SIGTERM; the pod's
	// termination grace period is this plus 30 s. Default 60 s.
	DrainDeadline time.Duration
	// JobYAML is the job file, verbatim.
	JobYAML []byte
	// Files are further files the job file names by a path relative to
	// itself (schema_file), by that path; they are shipped in the job's
	// ConfigMap and mounted beside the job file.
	Files map[string]string
	// ManagedBy is the app.kubernetes.io/managed-by label of every object.
	// Default "sluice-render"; the operator sets "sluice-operator".
	ManagedBy string
	// Brokers are the Kafka seed brokers the coordinator reads offsets from.
	Brokers []string
	// CoordinatorReplicas is the number of coordinator pods; one leads.
	// Default 2.
	CoordinatorReplicas int
	// WorkloadIdentity, when any field is set, gives the workers a service
	// account of their own, named as the job, annotated for each cloud's
	// workload identity.
	WorkloadIdentity WorkloadIdentity
}

// WorkloadIdentity is the cloud identity the workers' service account
// stands for; each field set adds what that cloud's webhook or metadata
// server looks for.
type WorkloadIdentity struct {
	// GCPServiceAccount: annotation iam.gke.io/gcp-service-account (GKE).
	GCPServiceAccount string
	// AWSRoleARN: annotation eks.amazonaws.com/role-arn (IRSA on EKS).
	AWSRoleARN string
	// AzureClientID: annotation azure.workload.identity/client-id on the
	// service account and label azure.workload.identity/use: "true" on the
	// pods (Azure workload identity on AKS).
	AzureClientID string
}

// annotations returns the service account's annotations, nil when none is
// asked for.
func (w WorkloadIdentity) annotations() map[string]string {
	a := map[string]string{}
	for k, v := range map[string]string{
		"iam.gke.io/gcp-service-account":    w.GCPServiceAccount,
		"eks.amazonaws.com/role-arn":        w.AWSRoleARN,
		"azure.workload.identity/client-id": w.AzureClientID,
	} {
		if v != "" {
			a[k] = v
		}
	}
	if len(a) == 0 {
		return nil
	}
	return a
}

// Defaults of JobSpec.
const (
	DefaultNamespace           = "default"
	DefaultMinWorkers          = 1
	DefaultMaxWorkers          = 50
	DefaultMetricsPort         = 9090
	DefaultDrainDeadline       = 60 * time.Second
	DefaultCoordinatorReplicas = 2
	// graceMargin is what the termination grace period adds to the drain
	// deadline, so that the kubelet never kills a pod that is still draining.
	graceMargin = 30 * time.Second
	// runAsUser is distroless's "nonroot" user.
	runAsUser = 65532
)

var (
	dnsLabel   = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	workerType = regexp.MustCompile(`^[a-z0-9]+-(standard|highmem|highcpu)-([1-9][0-9]*)$`)
)

// Resources returns the CPU cores and memory GiB of a worker type.
func Resources(worker string) (cpus, memGiB int, err error) {
	m := workerType.FindStringSubmatch(worker)
	if m == nil {
		return 0, 0, fmt.Errorf("unknown worker type %q: want FAMILY-standard-N, FAMILY-highmem-N or FAMILY-highcpu-N, e.g. n2d-standard-1", worker)
	}
	n, err := strconv.Atoi(m[2])
	if err != nil || n > 1024 {
		return 0, 0, fmt.Errorf("unknown worker type %q: vCPU count out of range", worker)
	}
	perCPU := map[string]int{"standard": 4, "highmem": 8, "highcpu": 1}[m[1]]
	return n, n * perCPU, nil
}

func (s JobSpec) withDefaults() JobSpec {
	if s.Namespace == "" {
		s.Namespace = DefaultNamespace
	}
	if s.MinWorkers == 0 {
		s.MinWorkers = DefaultMinWorkers
	}
	if s.MaxWorkers == 0 {
		s.MaxWorkers = DefaultMaxWorkers
	}
	if s.MetricsPort == 0 {
		s.MetricsPort = DefaultMetricsPort
	}
	if s.DrainDeadline == 0 {
		s.DrainDeadline = DefaultDrainDeadline
	}
	if s.CoordinatorReplicas == 0 {
		s.CoordinatorReplicas = DefaultCoordinatorReplicas
	}
	if s.ManagedBy == "" {
		s.ManagedBy = "sluice-render"
	}
	return s
}

// validate checks a defaulted spec for Render: the workers' objects and the
// coordinator's.
func (s JobSpec) validate() error {
	err := s.validateWorkers()
	if len(s.Brokers) == 0 {
		err = errors.Join(err, errors.New("no Kafka brokers for the coordinator"))
	}
	return err
}

// ValidateWorkers reports what is wrong with a spec for WorkerObjects.
func (s JobSpec) ValidateWorkers() error {
	return s.withDefaults().validateWorkers()
}

func (s JobSpec) validateWorkers() error {
	var errs []error
	if len(s.Job) > 52 || !dnsLabel.MatchString(s.Job) {
		// 52: StatefulSet pods get a "-<ordinal>" and a controller-revision
		// label derived from the name, which must stay within 63 characters.
		errs = append(errs, fmt.Errorf("job %q is not a DNS-1123 label of at most 52 characters", s.Job))
	}
	if !dnsLabel.MatchString(s.Namespace) {
		errs = append(errs, fmt.Errorf("namespace %q is not a DNS-1123 label", s.Namespace))
	}
	if s.Image == "" {
		errs = append(errs, errors.New("image is empty"))
	}
	if _, _, err := Resources(s.Worker); err != nil {
		errs = append(errs, err)
	}
	if s.MinWorkers < 0 || s.MaxWorkers < max(s.MinWorkers, 1) {
		errs = append(errs, fmt.Errorf("workers bounds [%d, %d] are inconsistent", s.MinWorkers, s.MaxWorkers))
	}
	if !s.NoMetrics && (s.MetricsPort < 1 || s.MetricsPort > 65535) {
		errs = append(errs, fmt.Errorf("metrics port %d out of range", s.MetricsPort))
	}
	if s.DrainDeadline < 0 {
		errs = append(errs, fmt.Errorf("drain deadline %s is negative", s.DrainDeadline))
	}
	if len(s.JobYAML) == 0 {
		errs = append(errs, errors.New("job file is empty"))
	}
	for p := range s.Files {
		if p == "" || strings.HasPrefix(p, "/") || slices.Contains(strings.Split(p, "/"), "..") || p == jobFileKey {
			errs = append(errs, fmt.Errorf("file %q must be a relative path below the job file, other than %s", p, jobFileKey))
		}
	}
	return errors.Join(errs...)
}

// Render writes the Kubernetes manifests of a job as multi-document YAML:
// the job file's ConfigMap, a headless Service, the workers' StatefulSet and
// PodDisruptionBudget, and the coordinator's ServiceAccount, Role,
// RoleBinding and Deployment. The output depends only on spec.
func Render(w io.Writer, spec JobSpec) error {
	spec = spec.withDefaults()
	if err := spec.validate(); err != nil {
		return fmt.Errorf("deploy: render %s: %w", spec.Job, err)
	}
	objs := Objects(spec)
	for i, o := range objs {
		b, err := marshal(o)
		if err != nil {
			return fmt.Errorf("deploy: render %s: %w", spec.Job, err)
		}
		sep := "---\n"
		if i == 0 {
			sep = ""
		}
		if _, err := io.WriteString(w, sep+string(b)); err != nil {
			return fmt.Errorf("deploy: render %s: %w", spec.Job, err)
		}
	}
	return nil
}

// EnvSecretName is the Secret that holds the values of a job's ${NAME}
// variables, one key per variable name.
func EnvSecretName(job string) string { return job + "-env" }

// FilesSecretName is the Secret that holds a job's secret files
// (password_file, token_file), one key per file (see SecretFileKey).
func FilesSecretName(job string) string { return job + "-files" }

// SecretFileKey is the key of a secret file in FilesSecretName: its base
// name, with characters a Secret key cannot hold replaced by '-'.
func SecretFileKey(path string) string {
	base := path[strings.LastIndexByte(path, '/')+1:]
	key := secretKeyChars.ReplaceAllString(base, "-")
	if key == "" || key == "." || key == ".." {
		key = "secret"
	}
	return key
}

var secretKeyChars = regexp.MustCompile(`[^-._a-zA-Z0-9]`)

// workDir is the workers' working directory: relative outputs of the job
// file land under it.
const workDir = "/var/lib/sluice"

// CoordinatorName is the name of the job's coordinator Deployment,
// ServiceAccount, Role, RoleBinding and Lease.
func CoordinatorName(job string) string { return job + "-coordinator" }

// WorkerSelector is the label selector of the job's worker pods.
func WorkerSelector(job string) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":      "sluice",
		"app.kubernetes.io/instance":  job,
		"app.kubernetes.io/component": "worker",
	}
}

// Objects returns the objects Render writes, in order: WorkerObjects, then
// the coordinator's. spec must be valid.
func Objects(spec JobSpec) []any {
	return append(WorkerObjects(spec), coordinatorObjects(spec.withDefaults())...)
}

// jobFileKey is the job file's key in the ConfigMap and its name beside the
// files of JobSpec.Files.
const jobFileKey = "job.yaml"

// ConfigMapName is the name of the ConfigMap holding a job's file.
func ConfigMapName(job string) string { return job + "-job" }

// FileKey is the ConfigMap key of one of JobSpec.Files: a key holds no '/'.
func FileKey(path string) string {
	return "file-" + secretKeyChars.ReplaceAllString(strings.ReplaceAll(path, "/", "."), "-")
}

// WorkerObjects returns the objects that run a job's workers, in order: the
// ConfigMap, the headless Service, the StatefulSet, the workers'
// ServiceAccount when the job asks for workload identity, and the
// PodDisruptionBudget, last. The operator creates exactly these. spec must
// pass ValidateWorkers.
func WorkerObjects(spec JobSpec) []any {
	spec = spec.withDefaults()
	cpus, mem, _ := Resources(spec.Worker)
	job := spec.Job
	labels, meta := spec.labels, spec.meta
	selector := &metav1.LabelSelector{MatchLabels: WorkerSelector(job)}
	grace := int64((spec.DrainDeadline + graceMargin) / time.Second)
	replicas := int32(spec.MinWorkers)
	maxUnavailable := intstr.FromInt32(1)
	res := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewQuantity(int64(cpus), resource.DecimalSI),
		corev1.ResourceMemory: resource.MustParse(fmt.Sprintf("%dGi", mem)),
	}

	env := []corev1.EnvVar{podName}
	for _, name := range spec.Env {
		env = append(env, corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{
			SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: EnvSecretName(job)}, Key: name},
		}})
	}
	mounts := []corev1.VolumeMount{
		{Name: "job", MountPath: "/etc/sluice", ReadOnly: true},
		{Name: "work", MountPath: workDir},
	}
	volumes := []corev1.Volume{
		{Name: "job", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: ConfigMapName(job)},
			Items:                configMapItems(spec.Files),
		}}},
		{Name: "work", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
	}
	if len(spec.SecretFiles) > 0 {
		volumes = append(volumes, corev1.Volume{Name: "secret-files", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: FilesSecretName(job), DefaultMode: ptr(int32(0o400)),
		}}})
		for _, p := range spec.SecretFiles {
			at := p
			if !strings.HasPrefix(p, "/") {
				at = workDir + "/" + strings.TrimPrefix(p, "./")
			}
			mounts = append(mounts, corev1.VolumeMount{Name: "secret-files", MountPath: at, SubPath: SecretFileKey(p), ReadOnly: true})
		}
	}
	var ports []corev1.ContainerPort
	var servicePorts []corev1.ServicePort
	var readiness, liveness *corev1.Probe
	annotations := map[string]string{"sluice.dev/worker": spec.Worker}
	if !spec.NoMetrics {
		ports = []corev1.ContainerPort{{Name: "metrics", ContainerPort: int32(spec.MetricsPort)}}
		servicePorts = []corev1.ServicePort{{Name: "metrics", Port: int32(spec.MetricsPort), TargetPort: intstr.FromString("metrics")}}
		readiness, liveness = probe("/readyz", 5), probe("/healthz", 10)
		annotations["prometheus.io/scrape"] = "true"
		annotations["prometheus.io/port"] = strconv.Itoa(spec.MetricsPort)
	}

	configMap := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: meta(ConfigMapName(job), "worker"),
		Data:       map[string]string{jobFileKey: string(spec.JobYAML)},
	}
	for p, content := range spec.Files {
		configMap.Data[FileKey(p)] = content
	}
	service := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: meta(job, "worker"),
		Spec: corev1.ServiceSpec{
			ClusterIP:                corev1.ClusterIPNone,
			Selector:                 WorkerSelector(job),
			PublishNotReadyAddresses: true,
			Ports:                    servicePorts,
		},
	}
	statefulSet := &appsv1.StatefulSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
		ObjectMeta: meta(job, "worker"),
		Spec: appsv1.StatefulSetSpec{
			ServiceName: job,
			Replicas:    &replicas,
			Selector:    selector,
			// Parallel: a scale-up starts every new pod at once; ordering
			// buys nothing since partitions are assigned by the group.
			PodManagementPolicy: appsv1.ParallelPodManagement,
			UpdateStrategy:      appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels:      labels("worker"),
					Annotations: annotations,
				},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: &grace,
					AutomountServiceAccountToken:  ptr(false),
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot: ptr(true), RunAsUser: ptr(int64(runAsUser)), FSGroup: ptr(int64(runAsUser)),
					},
					Containers: []corev1.Container{{
						Name:       "sluice",
						Image:      spec.Image,
						Args:       []string{"run", "/etc/sluice/job.yaml"},
						WorkingDir: "/var/lib/sluice",
						// The drain deadline is the job file's own
						// drain.deadline; the grace period is derived from it.
						Env:             env,
						Ports:           ports,
						Resources:       corev1.ResourceRequirements{Requests: res, Limits: res},
						ReadinessProbe:  readiness,
						LivenessProbe:   liveness,
						VolumeMounts:    mounts,
						SecurityContext: secCtx,
					}},
					Volumes: volumes,
				},
			},
		},
	}
	objects := []any{configMap, service, statefulSet}
	if ann := spec.WorkloadIdentity.annotations(); ann != nil {
		// The identity webhooks (EKS, AKS) project their own token
		// volume, and GKE's metadata server needs none: the pod's own
		// service-account token stays unmounted.
		sa := &corev1.ServiceAccount{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
			ObjectMeta: meta(job, "worker"),
		}
		sa.Annotations = ann
		statefulSet.Spec.Template.Spec.ServiceAccountName = job
		if spec.WorkloadIdentity.AzureClientID != "" {
			statefulSet.Spec.Template.Labels["azure.workload.identity/use"] = "true"
		}
		objects = append(objects, sa)
	}
	pdb := &policyv1.PodDisruptionBudget{
		TypeMeta:   metav1.TypeMeta{APIVersion: "policy/v1", Kind: "PodDisruptionBudget"},
		ObjectMeta: meta(job, "worker"),
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: &maxUnavailable,
			Selector:       selector,
		},
	}
	return append(objects, pdb)
}

// configMapItems maps the ConfigMap's keys to the files' paths beside the
// job file; nil (every key as its own file) when there are no extra files.
func configMapItems(files map[string]string) []corev1.KeyToPath {
	if len(files) == 0 {
		return nil
	}
	items := []corev1.KeyToPath{{Key: jobFileKey, Path: jobFileKey}}
	for _, p := range slices.Sorted(maps.Keys(files)) {
		items = append(items, corev1.KeyToPath{Key: FileKey(p), Path: p})
	}
	return items
}

func (s JobSpec) labels(component string) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":       "sluice",
		"app.kubernetes.io/instance":   s.Job,
		"app.kubernetes.io/component":  component,
		"app.kubernetes.io/managed-by": s.ManagedBy,
	}
}

func (s JobSpec) meta(name, component string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: s.Namespace, Labels: s.labels(component)}
}

var secCtx = &corev1.SecurityContext{
	RunAsNonRoot:             ptr(true),
	RunAsUser:                ptr(int64(runAsUser)),
	AllowPrivilegeEscalation: ptr(false),
	ReadOnlyRootFilesystem:   ptr(true),
	Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
}

var podName = corev1.EnvVar{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{
	FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"},
}}

func probe(path string, period int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: path, Port: intstr.FromString("metrics"),
		}},
		PeriodSeconds: period, FailureThreshold: 3,
	}
}

// coordinatorObjects are the coordinator's ServiceAccount, Role, RoleBinding
// and Deployment for one job. spec is defaulted.
func coordinatorObjects(spec JobSpec) []any {
	ns, job := spec.Namespace, spec.Job
	coord := CoordinatorName(job)
	meta := spec.meta
	coordSelector := &metav1.LabelSelector{MatchLabels: map[string]string{
		"app.kubernetes.io/name": "sluice", "app.kubernetes.io/instance": job, "app.kubernetes.io/component": "coordinator",
	}}
	coordReplicas := int32(spec.CoordinatorReplicas)
	serviceAccount := &corev1.ServiceAccount{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: meta(coord, "coordinator"),
	}
	role := &rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
		ObjectMeta: meta(coord, "coordinator"),
		// Exactly what the coordinator calls, nothing more.
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"apps"}, Resources: []string{"statefulsets"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"apps"}, Resources: []string{"statefulsets/scale"}, Verbs: []string{"get", "update", "patch"}},
			{APIGroups: []string{coordv1.GroupName}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update"}},
			{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}},
		},
	}
	binding := &rbacv1.RoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
		ObjectMeta: meta(coord, "coordinator"),
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: coord, Namespace: ns}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: coord},
	}
	deployment := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: meta(coord, "coordinator"),
		Spec: appsv1.DeploymentSpec{
			Replicas: &coordReplicas,
			Selector: coordSelector,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: spec.labels("coordinator")},
				Spec: corev1.PodSpec{
					ServiceAccountName: coord,
					SecurityContext:    &corev1.PodSecurityContext{RunAsNonRoot: ptr(true), RunAsUser: ptr(int64(runAsUser))},
					Containers: []corev1.Container{{
						Name:  "coordinator",
						Image: spec.Image,
						Args: []string{
							"coordinator",
							"--namespace=" + ns,
							"--job=" + job,
							"--brokers=" + strings.Join(spec.Brokers, ","),
							"--lease-name=" + coord,
							"--min-workers=" + strconv.Itoa(spec.MinWorkers),
							"--max-workers=" + strconv.Itoa(spec.MaxWorkers),
							"--metrics-port=" + strconv.Itoa(spec.MetricsPort),
							"--listen=:9091",
						},
						Env:   []corev1.EnvVar{podName},
						Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: 9091}},
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
							Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
						},
						ReadinessProbe:  probe("/readyz", 10),
						LivenessProbe:   probe("/healthz", 10),
						SecurityContext: secCtx,
					}},
				},
			},
		},
	}
	return []any{serviceAccount, role, binding, deployment}
}

// marshal writes an object as YAML without the empty status and
// creationTimestamp that the API types carry.
func marshal(o any) ([]byte, error) {
	j, err := json.Marshal(o)
	if err != nil {
		return nil, fmt.Errorf("marshal: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		return nil, fmt.Errorf("marshal: %w", err)
	}
	prune(m)
	b, err := yaml.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("marshal: %w", err)
	}
	return b, nil
}

// prune removes status and null or empty maps (creationTimestamp: null,
// resources: {}) recursively.
func prune(m map[string]any) {
	delete(m, "status")
	for k, v := range m {
		switch x := v.(type) {
		case nil:
			delete(m, k)
		case map[string]any:
			prune(x)
			if len(x) == 0 && k != "emptyDir" {
				delete(m, k)
			}
		case []any:
			for _, e := range x {
				if em, ok := e.(map[string]any); ok {
					prune(em)
				}
			}
		}
	}
}

func ptr[T any](v T) *T { return &v }
