package engine

import (
	"log/slog"
	"time"

	"github.com/sluicehq/sluice/engine/backoff"
)

// Job is everything the runtime needs to run one job in this process. cmd/sluice
// builds it from a job file; tests and benchmarks build it directly.
type Job struct {
	Name string
	Pod  string // this member's name: the pod name, or a unique name per process

	Pipelines []*Pipeline
	Source    Source
	Store     CheckpointStore
	// State opens the keyed state of tasks; required when a pipeline's
	// Transform is an Aggregator.
	State StateStore

	// Interval between checkpoints (default 10 s).
	Interval time.Duration
	// DrainDeadline bounds a drain (and a revocation): tasks get its first
	// three quarters (at most all but 10 s) to complete their bundles, then
	// give up the bundles their sinks did not acknowledge, and the final
	// checkpoint holds every complete position (default 60 s).
	DrainDeadline time.Duration
	// FlushTimeout bounds one Flush of one writer; a flush that takes longer
	// counts as failed and is retried (default 30 s).
	FlushTimeout time.Duration
	// Retry is the pause between attempts of a bundle whose sinks failed,
	// or of a record whose decoder's dependency is unavailable (default
	// backoff.Default: 100 ms growing to 30 s, jittered).
	Retry backoff.Policy
	// PermanentRetry is the pause between attempts while a failure is
	// marked Permanent, slow so that a fixed permission resumes by itself
	// without hammering the destination (default 30 s to 1 min, jittered).
	PermanentRetry backoff.Policy
	// Retain is how many checkpoints the store keeps per pod (default 3).
	Retain int
	// MaxBufferedBytes is how many fetched bytes one task may hold before the
	// source is asked to pause it (default 16 MiB); fetching resumes below half.
	MaxBufferedBytes int

	Logger  *slog.Logger
	Metrics *Metrics
	// Redact removes secrets from error text the runtime passes on (dead
	// letters, readiness reasons, status); nil leaves text as it is.
	Redact Redactor
}

// Pipeline is one pipeline of a job: which topics it reads, how it decodes,
// its SQL, and its sinks.
type Pipeline struct {
	Name string
	// Reads reports whether the pipeline reads a topic.
	Reads func(topic string) bool
	// Decoder decodes the topic's records. Pipelines that share a Decoder
	// value share the decoding of each record.
	Decoder   Decoder
	Transform Transform
	// Sinks are the pipeline's destinations. Each name is unique in the
	// pipeline and identifies the sink's checkpointed state, metrics and logs
	// for the life of the job, whatever its position in the list.
	Sinks      []NamedSink
	DeadLetter Sink

	// MaxRecords closes a bundle at this many records (default 10,000).
	MaxRecords int
	// MaxWait is the longest a bundle stays open (default 10 s); the adaptive
	// rule usually closes it much sooner (see task.go).
	MaxWait time.Duration
	// EventTime is the input column that drives watermarks; Slot < 0 means
	// the record timestamp.
	EventTime Column
	// AllowedLateness is how long after a window's end (in event time) a
	// stateful pipeline waits before emitting it (default 0): records of
	// the window that arrive later are dead letters with stage "late".
	AllowedLateness time.Duration
	// IdleTimeout: when a stateful pipeline's task has had no input for
	// this long, its watermark advances with the wall clock (checked at
	// each checkpoint), so that a quiet partition's windows are emitted;
	// 0 disables it.
	IdleTimeout time.Duration
}

// NamedSink is a sink with the name that identifies it in its pipeline.
type NamedSink struct {
	Name string
	Sink
}

func (j *Job) defaults() {
	if j.Interval <= 0 {
		j.Interval = 10 * time.Second
	}
	if j.DrainDeadline <= 0 {
		j.DrainDeadline = 60 * time.Second
	}
	if j.FlushTimeout <= 0 {
		j.FlushTimeout = 30 * time.Second
	}
	if j.Retry == (backoff.Policy{}) {
		j.Retry = backoff.Default
	}
	if j.PermanentRetry == (backoff.Policy{}) {
		j.PermanentRetry = backoff.Policy{Base: time.Minute, Max: time.Minute}
	}
	if j.Retain <= 0 {
		j.Retain = 3
	}
	if j.MaxBufferedBytes <= 0 {
		j.MaxBufferedBytes = 16 << 20
	}
	if j.Logger == nil {
		j.Logger = slog.New(slog.DiscardHandler)
	}
	if j.Metrics == nil {
		j.Metrics = NewMetrics(nil)
	}
	for _, p := range j.Pipelines {
		if p.MaxRecords <= 0 {
			p.MaxRecords = 10000
		}
		if p.MaxWait <= 0 {
			p.MaxWait = 10 * time.Second
		}
	}
}
