package v1alpha1

import (
	"encoding/json"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Group, Version and the resource's names.
const (
	Group    = "sluice.dev"
	Version  = "v1alpha1"
	Kind     = "SluiceJob"
	ListKind = "SluiceJobList"
	Resource = "sluicejobs"
	Singular = "sluicejob"
	// ShortName is what `kubectl get sj` accepts.
	ShortName = "sj"
)

// GroupVersionResource of SluiceJob, for dynamic clients and informers.
var GroupVersionResource = schema.GroupVersionResource{Group: Group, Version: Version, Resource: Resource}

// APIVersion is the apiVersion field of a SluiceJob.
const APIVersion = Group + "/" + Version

// Labels a SluiceJob carries by convention; `sluice jobs list -l` and
// `kubectl get sluicejobs -l` select on them.
const (
	LabelTenant      = "sluice.dev/tenant"
	LabelApplication = "sluice.dev/application"
)

// Finalizer is the operator's finalizer on every SluiceJob: deletion waits
// until the job's workers drained (and, with checkpoints: Delete, its
// progress is deleted).
const Finalizer = "sluice.dev/drain"

// SluiceJob is one job: its job file and how to run it (spec) and what the
// operator observed and did (status).
type SluiceJob struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   Spec   `json:"spec"`
	Status Status `json:"status,omitempty"`
}

// SluiceJobList is a list of SluiceJobs.
type SluiceJobList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []SluiceJob `json:"items"`
}

// Spec is the desired state of a job.
type Spec struct {
	// Job is the job file, verbatim: the same YAML `sluice run` reads and
	// `sluice validate` checks. Its `job:` key names the StatefulSet and the
	// Kafka consumer group, and must equal the resource's name.
	Job string `json:"job"`
	// Files are further files the job file refers to by a relative path
	// (schema_file), by that path: they are mounted beside the job file.
	Files map[string]string `json:"files,omitempty"`
	// Image is the sluice image the workers run. Default: the operator's
	// --image.
	Image string `json:"image,omitempty"`
	// Worker is the machine type (e.g. n2d-standard-1); default the job
	// file's `worker:`.
	Worker string `json:"worker,omitempty"`
	// Scaling bounds the autoscaler; zero fields take the job file's
	// `scaling:` values.
	Scaling Scaling `json:"scaling,omitempty"`
	// Suspend drains the job and scales it to zero, keeping its checkpoints
	// and committed offsets; clearing it resumes where the job stopped.
	Suspend bool `json:"suspend,omitempty"`
	// Checkpoints says what happens to the job's Kafka group offsets and
	// checkpoints when the SluiceJob is deleted: Retain (default) or Delete.
	Checkpoints CheckpointPolicy `json:"checkpoints,omitempty"`
}

// Scaling bounds the autoscaler for one job.
type Scaling struct {
	MinWorkers int32 `json:"minWorkers,omitempty"`
	MaxWorkers int32 `json:"maxWorkers,omitempty"`
	// ScaleToZero lets the autoscaler scale an idle job to zero workers and
	// back to one on its first new record (the same drain as suspend).
	ScaleToZero bool `json:"scaleToZero,omitempty"`
}

// CheckpointPolicy is what deletion does to a job's progress.
type CheckpointPolicy string

const (
	CheckpointsRetain CheckpointPolicy = "Retain"
	CheckpointsDelete CheckpointPolicy = "Delete"
)

// Phase is where a job is in its lifecycle.
type Phase string

const (
	// Pending: accepted, workers not all ready yet.
	PhasePending Phase = "Pending"
	// Running: every desired worker runs the current spec and is ready.
	PhaseRunning Phase = "Running"
	// Updating: a new spec (or a rollback) is being rolled out: the old
	// workers drain, then the new ones start.
	PhaseUpdating Phase = "Updating"
	// Draining: the workers drain before a suspend or a delete.
	PhaseDraining Phase = "Draining"
	// Suspended: no workers; checkpoints and offsets kept.
	PhaseSuspended Phase = "Suspended"
	// Failed: the spec is invalid (no worker runs it), or its workers
	// crash-loop and no earlier spec ran to roll back to.
	PhaseFailed Phase = "Failed"
)

// Phases lists every phase, in the order above.
var Phases = []Phase{PhasePending, PhaseRunning, PhaseUpdating, PhaseDraining, PhaseSuspended, PhaseFailed}

// Status is what the operator observed and did. Only the operator writes it.
type Status struct {
	Phase Phase `json:"phase,omitempty"`
	// ObservedGeneration is the generation of the spec the status describes.
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// DesiredWorkers is what the autoscaler (or suspend) asks for;
	// ReadyWorkers how many pods are ready.
	DesiredWorkers int32 `json:"desiredWorkers"`
	ReadyWorkers   int32 `json:"readyWorkers"`
	// BacklogRecords is the records between the group's committed offsets
	// and the end offsets; BacklogSeconds that backlog over the throughput.
	BacklogRecords int64 `json:"backlogRecords"`
	BacklogSeconds int64 `json:"backlogSeconds"`
	// LatencySeconds is now minus the job's oldest watermark, from the
	// workers' sluice_task_watermark_lag_seconds.
	LatencySeconds int64 `json:"latencySeconds"`
	// LastCheckpoint is the newest checkpoint the workers report.
	LastCheckpoint *Checkpoint `json:"lastCheckpoint,omitempty"`
	// SpecHash identifies the spec the workers run now (RunningSpec's, or
	// the current one's during an update).
	SpecHash string `json:"specHash,omitempty"`
	// RunningSpec is the last spec whose workers all became ready: what a
	// crash-looping update rolls back to.
	RunningSpec *Spec `json:"runningSpec,omitempty"`
	// RolledBackGeneration is the generation whose spec was rolled back;
	// the operator runs RunningSpec until the spec changes again.
	RolledBackGeneration int64 `json:"rolledBackGeneration,omitempty"`
	// Conditions: Valid, Ready, RolledBack.
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// History holds the last MaxHistory phase transitions and rescales
	// (reason Scaled, From = To), oldest first.
	History []Transition `json:"history,omitempty"`
}

// Checkpoint describes one checkpoint.
type Checkpoint struct {
	Key   string      `json:"key,omitempty"`
	Time  metav1.Time `json:"time,omitempty"`
	Bytes int64       `json:"bytes,omitempty"`
}

// Transition is one change of phase.
type Transition struct {
	Time       metav1.Time `json:"time"`
	From       Phase       `json:"from,omitempty"`
	To         Phase       `json:"to"`
	Reason     string      `json:"reason"`
	Message    string      `json:"message,omitempty"`
	Generation int64       `json:"generation"`
}

// MaxHistory bounds Status.History.
const MaxHistory = 20

// Condition types.
const (
	ConditionValid      = "Valid"
	ConditionReady      = "Ready"
	ConditionRolledBack = "RolledBack"
)

// Clone returns a deep copy of the status.
func (s Status) Clone() Status {
	b, err := json.Marshal(s)
	if err != nil {
		panic(fmt.Sprintf("v1alpha1: clone status: %v", err)) // plain data: cannot fail
	}
	var c Status
	if err := json.Unmarshal(b, &c); err != nil {
		panic(fmt.Sprintf("v1alpha1: clone status: %v", err))
	}
	return c
}
