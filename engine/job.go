package engine

import (
	"log/slog"
	"time"

	"github.com/sluicehq/sluice/engine/backoff"
)

// Defaults of a Job's and a Pipeline's zero fields: each is written here
// once, named in its field's comment, and is also the job file's default
// (engine/config refers to these).
const (
	DefaultInterval         = 10 * time.Second
	DefaultDrainDeadline    = 60 * time.Second
	DefaultFlushTimeout     = 30 * time.Second
	DefaultRetain           = 3
	DefaultMaxBufferedBytes = 16 << 20
	DefaultMaxRecords       = 10000
	DefaultMaxWait          = 10 * time.Second
)

// DefaultPermanentRetry is the pause between attempts while a failure is
// permanent: a minute with equal jitter, so 30 s to 1 min.
var DefaultPermanentRetry = backoff.Policy{Base: time.Minute, Max: time.Minute}

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

	// Interval between checkpoints (DefaultInterval).
	Interval time.Duration
	// DrainDeadline bounds a drain (and a revocation): tasks get its first
	// three quarters (at most all but 10 s) to complete their bundles, then
	// give up the bundles their sinks did not acknowledge, and the final
	// checkpoint holds every complete position (DefaultDrainDeadline).
	DrainDeadline time.Duration
	// FlushTimeout bounds one Flush of one writer; a flush that takes longer
	// counts as failed and is retried (DefaultFlushTimeout).
	FlushTimeout time.Duration
	// Retry is the pause between attempts of a bundle whose sinks failed,
	// or of a record whose decoder's dependency is unavailable (default
	// backoff.Default: 100 ms growing to 30 s, jittered).
	Retry backoff.Policy
	// PermanentRetry is the pause between attempts while a failure is
	// marked Permanent, slow so that a fixed permission resumes by itself
	// without hammering the destination (DefaultPermanentRetry).
	PermanentRetry backoff.Policy
	// Retain is how many checkpoints the store keeps per pod (DefaultRetain).
	Retain int
	// MaxBufferedBytes is how many fetched bytes one task may hold before the
	// source is asked to pause it (DefaultMaxBufferedBytes); fetching resumes
	// below half.
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

	// MaxRecords closes a bundle at this many records (DefaultMaxRecords).
	MaxRecords int
	// MaxWait is the longest a bundle stays open (DefaultMaxWait); the adaptive
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
		j.Interval = DefaultInterval
	}
	if j.DrainDeadline <= 0 {
		j.DrainDeadline = DefaultDrainDeadline
	}
	if j.FlushTimeout <= 0 {
		j.FlushTimeout = DefaultFlushTimeout
	}
	if j.Retry == (backoff.Policy{}) {
		j.Retry = backoff.Default
	}
	if j.PermanentRetry == (backoff.Policy{}) {
		j.PermanentRetry = DefaultPermanentRetry
	}
	if j.Retain <= 0 {
		j.Retain = DefaultRetain
	}
	if j.MaxBufferedBytes <= 0 {
		j.MaxBufferedBytes = DefaultMaxBufferedBytes
	}
	if j.Logger == nil {
		j.Logger = slog.New(slog.DiscardHandler)
	}
	if j.Metrics == nil {
		j.Metrics = NewMetrics(nil)
	}
	for _, p := range j.Pipelines {
		if p.MaxRecords <= 0 {
			p.MaxRecords = DefaultMaxRecords
		}
		if p.MaxWait <= 0 {
			p.MaxWait = DefaultMaxWait
		}
	}
}
