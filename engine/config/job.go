package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Defaults. Every default of the job file is here and nowhere else; the field
// comments of the structs below name them.
const (
	DefaultCheckpointStore    = "file://./.sluice/ckpt"
	DefaultCheckpointInterval = 10 * time.Second
	DefaultDrainDeadline      = 60 * time.Second
	DefaultMaxRecords         = 10000
	DefaultMaxWait            = 10 * time.Second
	DefaultStart              = "earliest"
	DefaultStopAt             = "none"
	DefaultWriterSchema       = "reader"
	DefaultWorker             = "n2d-standard-1"
	DefaultMetricsListen      = ":9090"
	DefaultMinWorkers         = 1
	DefaultMaxWorkers         = 50
	DefaultDeadLetterDir      = ".sluice/dlq"
)

// Job is a job file: one StatefulSet, one Kafka consumer group.
type Job struct {
	Pos Pos
	// Job names the job: a DNS-1123 label, used as the StatefulSet name and
	// the Kafka consumer group id.
	Job   string `yaml:"job" required:"true"`
	Kafka *Kafka `yaml:"kafka"`
	// Checkpoint: store defaults to DefaultCheckpointStore, interval to
	// DefaultCheckpointInterval.
	Checkpoint Checkpoint `yaml:"checkpoint"`
	// Worker is the machine type that sets pod resources (DefaultWorker).
	Worker  string  `yaml:"worker"`
	Scaling Scaling `yaml:"scaling"`
	Metrics Metrics `yaml:"metrics"`
	Drain   Drain   `yaml:"drain"`
	// WorkloadIdentity, when set, makes sluice render give the workers a
	// service account bound to a cloud identity, through which the
	// checkpoint store and the sinks are reached without keys.
	WorkloadIdentity *WorkloadIdentity `yaml:"workload_identity"`
	// Pipelines are the job's independent pipelines, at least one.
	Pipelines []Pipeline `yaml:"pipelines" required:"true"`

	// Dir is the directory of the job file: relative paths in it (schema
	// files, file sources and sinks) are relative to the directory the
	// command runs in, as a user of a CLI expects; Dir is kept for tools.
	Dir string `yaml:"-"`
}

// Kafka is the cluster the job reads from and writes to.
type Kafka struct {
	Pos            Pos
	Brokers        []string  `yaml:"brokers" required:"true"`
	TLS            *TLS      `yaml:"tls"`
	SASL           *SASL     `yaml:"sasl"`
	SchemaRegistry *Registry `yaml:"schema_registry"`
}

// TLS configures TLS to a server. An empty TLS block means TLS with the
// system's roots.
type TLS struct {
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// SASL configures Kafka authentication. Secrets come from a file or an
// environment variable (${NAME}), never written in the job file.
type SASL struct {
	Pos Pos
	// Mechanism is PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER.
	Mechanism    string `yaml:"mechanism" required:"true"`
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	// Token and TokenFile hold the OAUTHBEARER token.
	Token     string `yaml:"token"`
	TokenFile string `yaml:"token_file"`
}

// Registry is a Confluent-compatible schema registry.
type Registry struct {
	URL          string `yaml:"url" required:"true"`
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	TLS          *TLS   `yaml:"tls"`
}

// Checkpoint says where and how often checkpoints are written.
type Checkpoint struct {
	Pos Pos
	// Store is gs://bucket/path, s3://bucket/path, azblob://container/path
	// (or az://) or file:///dir (DefaultCheckpointStore); checkpoint.Open
	// documents each form and its query parameters.
	Store string `yaml:"store"`
	// Interval between checkpoints (DefaultCheckpointInterval).
	Interval time.Duration `yaml:"interval"`
	// Retain is how many checkpoints per pod are kept before garbage
	// collection (default 3).
	Retain int `yaml:"retain"`
}

// Scaling bounds the coordinator (DefaultMinWorkers, DefaultMaxWorkers).
type Scaling struct {
	Pos        Pos
	MinWorkers int `yaml:"min_workers"`
	MaxWorkers int `yaml:"max_workers"`
}

// Metrics is the HTTP endpoint for /metrics, /healthz, /readyz and /drain.
type Metrics struct {
	// Listen is the address (DefaultMetricsListen); "off" disables it.
	Listen string `yaml:"listen"`
}

// WorkloadIdentity names the cloud identity the workers' Kubernetes service
// account stands for; each field set adds that cloud's annotation.
type WorkloadIdentity struct {
	// GCPServiceAccount is a Google service account (GKE workload identity).
	GCPServiceAccount string `yaml:"gcp_service_account"`
	// AWSRoleARN is an IAM role (IRSA on EKS).
	AWSRoleARN string `yaml:"aws_role_arn"`
	// AzureClientID is a managed identity's or app's client id (Azure
	// workload identity on AKS).
	AzureClientID string `yaml:"azure_client_id"`
}

// Drain bounds a drain (DefaultDrainDeadline).
type Drain struct {
	Deadline time.Duration `yaml:"deadline"`
}

// Pipeline is source topics → decode → SQL → sinks.
type Pipeline struct {
	Pos    Pos
	Name   string `yaml:"name" required:"true"`
	Source Source `yaml:"source" required:"true"`
	Format Format `yaml:"format"`
	// EventTime is the column that drives watermarks; default the Kafka
	// record timestamp.
	EventTime string   `yaml:"event_time"`
	SQL       Text     `yaml:"sql" required:"true"`
	Bundle    Bundle   `yaml:"bundle"`
	Sinks     []Plugin `yaml:"sinks" required:"true"`
	// DeadLetter receives records that cannot be decoded or evaluated;
	// default a JSON-lines file under DefaultDeadLetterDir named after the
	// job and pipeline.
	DeadLetter *Plugin `yaml:"dead_letter"`
}

// Source is where a pipeline's records come from: exactly one of Kafka, File.
type Source struct {
	Pos   Pos
	Kafka *KafkaSource `yaml:"kafka"`
	File  *FileSource  `yaml:"file"`
}

// KafkaSource reads topics of the job's cluster.
type KafkaSource struct {
	Pos        Pos
	Topics     []string `yaml:"topics"`
	TopicRegex string   `yaml:"topic_regex"`
	// Start is earliest or latest (DefaultStart): where a task with no
	// committed offset starts.
	Start string `yaml:"start"`
	// StopAt is none or end (DefaultStopAt): end stops at the end offsets
	// seen at start, for backfills.
	StopAt string `yaml:"stop_at"`
}

// FileSource reads one Avro object container file (.avro) or JSON-lines file
// (.jsonl, .json) as a bounded source.
type FileSource struct {
	Path string `yaml:"path" required:"true"`
}

// Format is how records are encoded: exactly one of Avro, JSON. A file source
// of an Avro container file needs none (the file holds its schema), but
// may name a reader schema.
type Format struct {
	Pos  Pos
	Avro *AvroFormat `yaml:"avro"`
	JSON *JSONFormat `yaml:"json"`
}

// AvroFormat decodes Avro binary records into rows of the reader schema.
type AvroFormat struct {
	Pos        Pos
	SchemaFile string `yaml:"schema_file" required:"true"`
	// WriterSchema is registry, header or reader (DefaultWriterSchema).
	WriterSchema string `yaml:"writer_schema"`
}

// JSONFormat decodes JSON records typed by an Avro schema.
type JSONFormat struct {
	SchemaFile string `yaml:"schema_file" required:"true"`
}

// Bundle bounds a bundle (DefaultMaxRecords, DefaultMaxWait).
type Bundle struct {
	Pos        Pos
	MaxRecords int           `yaml:"max_records"`
	MaxWait    time.Duration `yaml:"max_wait"`
}

// Load reads, decodes and checks a job file. ${NAME} in string values is
// replaced from lookup (os.LookupEnv when nil). The error, when not nil, is an
// Errors listing every problem with its position.
func Load(path string, lookup func(string) (string, bool)) (*Job, error) {
	b, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, b, lookup)
}

// Parse is Load on the contents of a file named path.
func Parse(path string, data []byte, lookup func(string) (string, bool)) (*Job, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, Errors{yamlError(path, err)}
	}
	if len(root.Content) == 0 {
		return nil, Errors{{File: path, Line: 1, Col: 1, Msg: "the job file is empty"}}
	}
	d := &decoder{file: path, raw: strings.Split(string(data), "\n"), lookup: lookup}
	j := &Job{Dir: filepath.Dir(path)}
	d.decode(&root, reflect.ValueOf(j).Elem())
	j.applyDefaults()
	d.errs = append(d.errs, j.validate()...)
	if len(d.errs) > 0 {
		return j, d.errs.sorted()
	}
	return j, nil
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

func yamlError(path string, err error) *Error {
	e := &Error{File: path, Line: 1, Col: 1, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		fmt.Sscan(m[1], &e.Line)
	}
	return e
}

func (j *Job) applyDefaults() {
	if j.Checkpoint.Store == "" {
		j.Checkpoint.Store = DefaultCheckpointStore
	}
	if j.Checkpoint.Interval == 0 {
		j.Checkpoint.Interval = DefaultCheckpointInterval
	}
	if j.Checkpoint.Retain == 0 {
		j.Checkpoint.Retain = 3
	}
	if j.Drain.Deadline == 0 {
		j.Drain.Deadline = DefaultDrainDeadline
	}
	if j.Worker == "" {
		j.Worker = DefaultWorker
	}
	if j.Metrics.Listen == "" {
		j.Metrics.Listen = DefaultMetricsListen
	}
	if j.Scaling.MinWorkers == 0 {
		j.Scaling.MinWorkers = DefaultMinWorkers
	}
	if j.Scaling.MaxWorkers == 0 {
		j.Scaling.MaxWorkers = DefaultMaxWorkers
	}
	for i := range j.Pipelines {
		p := &j.Pipelines[i]
		if p.Bundle.MaxRecords == 0 {
			p.Bundle.MaxRecords = DefaultMaxRecords
		}
		if p.Bundle.MaxWait == 0 {
			p.Bundle.MaxWait = DefaultMaxWait
		}
		if k := p.Source.Kafka; k != nil {
			if k.Start == "" {
				k.Start = DefaultStart
			}
			if k.StopAt == "" {
				k.StopAt = DefaultStopAt
			}
		}
		if a := p.Format.Avro; a != nil && a.WriterSchema == "" {
			a.WriterSchema = DefaultWriterSchema
		}
	}
}

var dns1123 = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// validate checks what the types alone cannot. Components check their own
// settings when they are built (Plugin.Decode).
func (j *Job) validate() Errors {
	var errs Errors
	add := func(e *Error) { errs = append(errs, e) }
	if j.Job != "" && (len(j.Job) > 63 || !dns1123.MatchString(j.Job)) {
		add(j.Pos.Key("job").Errorf("job %q must be a DNS-1123 label: lower-case letters, digits and '-', at most 63 characters", j.Job))
	}
	if s := j.Checkpoint.Store; !slices.ContainsFunc([]string{"file://", "gs://", "s3://", "azblob://", "az://"}, func(p string) bool { return strings.HasPrefix(s, p) }) {
		add(j.Checkpoint.Pos.Key("store").Errorf("checkpoint store %q must be gs://bucket/path, s3://bucket/path, azblob://container/path or file:///dir", s))
	}
	if j.Checkpoint.Interval < 0 {
		add(j.Checkpoint.Pos.Key("interval").Errorf("checkpoint interval must be positive"))
	}
	if j.Scaling.MinWorkers < 0 || j.Scaling.MaxWorkers < j.Scaling.MinWorkers {
		add(j.Scaling.Pos.Errorf("scaling needs 0 <= min_workers <= max_workers, got %d and %d", j.Scaling.MinWorkers, j.Scaling.MaxWorkers))
	}
	if s := j.Kafka; s != nil && s.SASL != nil {
		switch s.SASL.Mechanism {
		case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER":
		default:
			add(s.SASL.Pos.Key("mechanism").Errorf("sasl mechanism %q must be PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER", s.SASL.Mechanism))
		}
	}
	names := map[string]bool{}
	needKafka := false
	for i := range j.Pipelines {
		p := &j.Pipelines[i]
		if p.Name != "" {
			if names[p.Name] {
				add(p.Pos.Key("name").Errorf("pipeline name %q is used twice", p.Name))
			}
			names[p.Name] = true
		}
		src := p.Source
		switch {
		case src.Kafka != nil && src.File != nil:
			add(src.Pos.Errorf("a source is either kafka or file, not both"))
		case src.Kafka == nil && src.File == nil && src.Pos.Line > 0:
			add(src.Pos.Errorf("a source needs kafka or file"))
		case src.Kafka != nil:
			needKafka = true
			k := src.Kafka
			if len(k.Topics) == 0 && k.TopicRegex == "" {
				add(k.Pos.Errorf("a kafka source needs topics or topic_regex"))
			}
			if len(k.Topics) > 0 && k.TopicRegex != "" {
				add(k.Pos.Key("topic_regex").Errorf("a kafka source takes topics or topic_regex, not both"))
			}
			if k.TopicRegex != "" {
				if _, err := regexp.Compile(k.TopicRegex); err != nil {
					add(k.Pos.Key("topic_regex").Errorf("topic_regex: %v", err))
				}
			}
			if k.Start != "earliest" && k.Start != "latest" {
				add(k.Pos.Key("start").Errorf("start must be earliest or latest, got %q", k.Start))
			}
			if k.StopAt != "none" && k.StopAt != "end" {
				add(k.Pos.Key("stop_at").Errorf("stop_at must be none or end, got %q", k.StopAt))
			}
		}
		f := p.Format
		if f.Avro != nil && f.JSON != nil {
			add(f.Pos.Errorf("a format is either avro or json, not both"))
		}
		if f.Avro == nil && f.JSON == nil && src.Kafka != nil {
			add(p.Pos.Key("source").Errorf("a kafka source needs a format (avro or json)"))
		}
		if a := f.Avro; a != nil {
			switch a.WriterSchema {
			case "registry", "header", "reader":
			default:
				add(a.Pos.Key("writer_schema").Errorf("writer_schema must be registry, header or reader, got %q", a.WriterSchema))
			}
			if a.WriterSchema == "registry" && (j.Kafka == nil || j.Kafka.SchemaRegistry == nil) {
				add(a.Pos.Key("writer_schema").Errorf("writer_schema: registry needs kafka.schema_registry"))
			}
		}
		if p.Bundle.MaxRecords < 0 {
			add(p.Bundle.Pos.Key("max_records").Errorf("max_records must be positive"))
		}
		if p.Bundle.MaxWait < 0 {
			add(p.Bundle.Pos.Key("max_wait").Errorf("max_wait must be positive"))
		}
		if len(p.Sinks) == 0 && p.Pos.Line > 0 && p.Pos.keys["sinks"] != [2]int{} {
			add(p.Pos.Key("sinks").Errorf("a pipeline needs at least one sink"))
		}
	}
	if needKafka && j.Kafka == nil {
		add(j.Pos.Errorf("a pipeline reads kafka but the job has no kafka section"))
	}
	return errs
}

// AsErrors returns err as Errors when it is one (or wraps an *Error), so that
// callers can merge problems found by components with those of the file.
func AsErrors(err error) (Errors, bool) {
	var es Errors
	if errors.As(err, &es) {
		return es, true
	}
	var e *Error
	if errors.As(err, &e) {
		return Errors{e}, true
	}
	return nil, false
}

// Merge sorts and returns every error as one Errors value, nil when there are none.
func Merge(errs ...error) error {
	var all Errors
	for _, err := range errs {
		if err == nil {
			continue
		}
		if es, ok := AsErrors(err); ok {
			all = append(all, es...)
		} else {
			all = append(all, &Error{Msg: err.Error()})
		}
	}
	if len(all) == 0 {
		return nil
	}
	return all.sorted()
}
