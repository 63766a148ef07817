package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/engine"
)

// Defaults. Every default of the job file is here and nowhere else; the field
// comments of the structs below name them. Those that are the runtime's own
// (an engine.Job's zero fields) are the runtime's constants, so that a job
// file and a job built in Go cannot disagree.
const (
	DefaultCheckpointStore    = "file://./.sluice/ckpt"
	DefaultCheckpointInterval = engine.DefaultInterval
	DefaultDrainDeadline      = engine.DefaultDrainDeadline
	DefaultMaxRecords         = engine.DefaultMaxRecords
	DefaultMaxWait            = engine.DefaultMaxWait
	DefaultStart              = "earliest"
	DefaultStopAt             = "none"
	DefaultWriterSchema       = "reader"
	DefaultWorker             = "n2d-standard-1"
	DefaultMetricsListen      = ":9090"
	DefaultAdminListen        = "127.0.0.1:9091"
	DefaultRetain             = engine.DefaultRetain
	DefaultMinWorkers         = 1
	DefaultMaxWorkers         = 50
	DefaultDeadLetterDir      = ".sluice/dlq"
	DefaultSLALatency         = 10 * time.Minute
	DefaultSLAFor             = 5 * time.Minute
	DefaultSLADeadLetters     = 1.0 // per second, over 10 minutes
	DefaultIdleTimeout        = time.Minute
	// AggregationPerPartition is the aggregation mode of a windowed GROUP
	// BY where each task (Kafka partition) emits the rows of its own
	// records: one row per partition holding records of a group and window.
	AggregationPerPartition = "per_partition"
	// AggregationShuffle is the aggregation mode of a windowed GROUP BY
	// where source tasks pre-aggregate and send partials by group key
	// through a repartition topic, whose tasks merge and emit one row per
	// group and window: the default for a Kafka source.
	AggregationShuffle = "shuffle"
	// MaxFileBytes bounds a job file: a bigger one (or a FIFO, or a device
	// that never ends) is an error, not an ever-growing read.
	MaxFileBytes = 4 << 20
	// MinSecretLen is the shortest ${NAME} value treated as a secret and
	// redacted from what leaves the process; shorter values would redact
	// common words and digits.
	MinSecretLen = 4
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
	// Memory bounds the fetched input a worker holds (see Memory).
	Memory Memory `yaml:"memory"`
	// SLA sets the thresholds of the job's alert rules (sluice render
	// --monitoring).
	SLA SLA `yaml:"sla"`
	// WorkloadIdentity, when set, makes sluice render give the workers a
	// service account bound to a cloud identity, through which the
	// checkpoint store and the sinks are reached without keys.
	WorkloadIdentity *WorkloadIdentity `yaml:"workload_identity"`
	// Pipelines are the job's independent pipelines, at least one.
	Pipelines []Pipeline `yaml:"pipelines" required:"true"`

	// Dir is the directory of the job file. Inputs named in the file (schema
	// files, file sources) are relative to Dir, so that a job reads the same
	// files from any working directory; outputs (file sinks, dead-letter
	// files, file:// checkpoint stores) are relative to the working
	// directory, where a user looks for them.
	Dir string `yaml:"-"`

	// Vars are the environment variables the file uses (${NAME}), in order
	// of first use, with where each first appears.
	Vars []Var `yaml:"-"`
	// SecretFiles are the files the job reads secrets from (password_file,
	// token_file), in order of appearance.
	SecretFiles []SecretFile `yaml:"-"`
	// secrets are the values that came from ${NAME} or a secret file.
	secrets []string
}

// Var is an environment variable a job file uses.
type Var struct {
	Name string
	Pos  Pos
}

// SecretFile is a file a job reads a secret from, named by its key.
type SecretFile struct {
	Key  string // password_file, token_file
	Path string
	// Templated says the path was written with ${NAME} in it.
	Templated bool
	Pos       Pos
}

// Kafka is the cluster the job reads from and writes to.
type Kafka struct {
	Pos            Pos
	Brokers        []string  `yaml:"brokers" required:"true"`
	TLS            *TLS      `yaml:"tls"`
	SASL           *SASL     `yaml:"sasl"`
	SchemaRegistry *Registry `yaml:"schema_registry"`
}

// Validate reports, at their positions, a broker that is not host:port, an
// unknown SASL mechanism and a TLS block's certificate without its key. That brokers are listed at all is the decoder's
// check (a required key), since a command line may supply them instead.
func (k *Kafka) Validate() Errors {
	var errs Errors
	for _, b := range k.Brokers {
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			errs = append(errs, k.Pos.Key("brokers").Errorf("kafka broker %q must be host:port", b))
		}
	}
	if k.SASL != nil {
		switch k.SASL.Mechanism {
		case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER":
		default:
			errs = append(errs, k.SASL.Pos.Key("mechanism").Errorf("sasl mechanism %q must be PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER", k.SASL.Mechanism))
		}
	}
	errs = append(errs, k.TLS.Validate()...)
	if k.SchemaRegistry != nil {
		errs = append(errs, k.SchemaRegistry.TLS.Validate()...)
	}
	return errs
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
	// collection (DefaultRetain).
	Retain int `yaml:"retain"`
}

// Scaling bounds the coordinator (DefaultMinWorkers, DefaultMaxWorkers).
type Scaling struct {
	Pos        Pos
	MinWorkers int `yaml:"min_workers"`
	MaxWorkers int `yaml:"max_workers"`
}

// Metrics are the HTTP endpoints of a worker: the public one (/metrics,
// /healthz, /readyz, the status page) and the admin one (POST /drain, which
// changes state), kept apart so that whoever can scrape a pod cannot stop it.
type Metrics struct {
	Pos Pos
	// Listen is the public address (DefaultMetricsListen); "off" disables it.
	Listen string `yaml:"listen"`
	// AdminListen is the address of POST /drain (DefaultAdminListen,
	// loopback only, or off when Listen is off); "off" disables it.
	AdminListen string `yaml:"admin_listen"`
	// PerPartition exports every series as recorded: per task (topic,
	// partition), per sink, and the histograms. Off by default: a worker
	// then exports 3 series per pipeline and at most 11 per job.
	PerPartition bool `yaml:"per_partition"`
}

// SLA is what the job promises, as its alert rules check it.
type SLA struct {
	Pos Pos
	// Latency is the most a pipeline's latency may be (DefaultSLALatency)
	// for longer than For (DefaultSLAFor) before an alert fires.
	Latency time.Duration `yaml:"latency"`
	For     time.Duration `yaml:"for"`
	// DeadLetters is the dead-letter rate, per second over 10 minutes, above
	// which an alert fires (DefaultSLADeadLetters).
	DeadLetters float64 `yaml:"dead_letters_per_second"`
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
	Pos      Pos
	Deadline time.Duration `yaml:"deadline"`
}

// Memory bounds the fetched input a worker holds, and with it the worker's
// memory: docs/job-file.md gives the bound they imply. Zero values take the
// defaults of the parts that use them.
type Memory struct {
	Pos Pos
	// TaskBuffer is how many fetched bytes one task may hold before its
	// fetching pauses; fetching resumes below half (default 16MiB, the
	// engine's Job.MaxBufferedBytes).
	TaskBuffer ByteSize `yaml:"task_buffer"`
	// Fetch bounds one Kafka fetch response (default 16MiB, the Kafka
	// source's FetchMaxBytes); a partition's share of one fetch is at most
	// the smaller of Fetch and 1MiB.
	Fetch ByteSize `yaml:"fetch"`
	// GCPercent is the worker's garbage-collection target, as GOGC: the
	// heap grows by this percentage of what is live before a collection
	// (default 200, cmd/sluice's DefaultGCPercent; the GOGC environment
	// variable, when set, wins).
	GCPercent int `yaml:"gc_percent"`
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
	// AllowedLateness is how long, in event time, a windowed GROUP BY
	// waits after a window's end before emitting it (default 0); records
	// of an emitted window are dead letters with stage late.
	AllowedLateness time.Duration `yaml:"allowed_lateness"`
	// IdleTimeout: a task with no input for this long advances its
	// watermark with the wall clock, so that its last windows are
	// emitted (DefaultIdleTimeout).
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// Aggregation is how a windowed GROUP BY is computed: shuffle
	// (AggregationShuffle, the default for a Kafka source), one row per
	// group and window whatever the partitioning; or per_partition
	// (AggregationPerPartition, the default for a file or generate source,
	// which are one task), each task emitting the rows of its own records,
	// partial rows when a group's records are spread over partitions.
	Aggregation string `yaml:"aggregation"`
	// ShufflePartitions is the partition count of a shuffled aggregation's
	// repartition topic when sluice creates it; 0 (the default): the
	// source topics' partitions in all.
	ShufflePartitions int `yaml:"shuffle_partitions"`
	// Dedup drops records whose key was seen within a span of event time.
	Dedup *Dedup `yaml:"dedup"`
}

// Dedup drops a record whose key was seen, in the same task, within the
// last Within of event time.
type Dedup struct {
	Pos    Pos
	Key    string        `yaml:"key" required:"true"`
	Within time.Duration `yaml:"within" required:"true"`
}

// Source is where a pipeline's records come from: exactly one of Kafka,
// File, Generate.
type Source struct {
	Pos      Pos
	Kafka    *KafkaSource    `yaml:"kafka"`
	File     *FileSource     `yaml:"file"`
	Generate *GenerateSource `yaml:"generate"`
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

// GenerateSource produces Avro records of a schema, for demos and load
// tests: realistic firewall traffic for the traffic schemas
// (examples/schemas/traffic.avsc), seeded random values for any other.
type GenerateSource struct {
	Pos Pos
	// Schema is the Avro schema file (a record) of the generated records,
	// relative to the job file; it is their writer schema. Required.
	Schema string `yaml:"schema" required:"true"`
	// Rate is records per second; 0 (the default) generates as fast as the
	// pipeline takes them.
	Rate int `yaml:"rate"`
	// Seed makes the records the same on every run, timestamps included
	// (they start at 2026-01-01T00:00:00Z); 0 (the default) seeds from the
	// clock, with timestamps from now.
	Seed int64 `yaml:"seed"`
	// Count bounds the source: it ends after that many records and the job
	// exits once drained; 0 (the default) is unbounded.
	Count int64 `yaml:"count"`
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
	b, err := ReadFile(path)
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
	root, err := parseYAML(path, "job file", data)
	if err != nil {
		return nil, err
	}
	d := &decoder{file: path, raw: strings.Split(string(data), "\n"), lookup: lookup}
	j := &Job{Dir: filepath.Dir(path)}
	d.decode(root, reflect.ValueOf(j).Elem())
	j.collectSecrets(path, root, lookup)
	j.applyDefaults()
	// A value that did not decode is left zero; validate's complaint about
	// the zero would be a second error at the same place.
	at := map[[2]int]bool{}
	for _, e := range d.errs {
		at[[2]int{e.Line, e.Col}] = true
	}
	for _, e := range j.validate() {
		if !at[[2]int{e.Line, e.Col}] {
			d.errs = append(d.errs, e)
		}
	}
	if len(d.errs) > 0 {
		return j, d.errs.sorted()
	}
	return j, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// yamlParserProblems are the problems yaml.v3's parser (not its scanner)
// reports. It reports them at the zero-based line of their context (the
// unclosed bracket, the mapping that lacks a key), one line early; the
// scanner's are one-based already.
var yamlParserProblems = []string{
	"did not find expected <stream-start>",
	"did not find expected <document start>",
	"found undefined tag handle",
	"did not find expected node content",
	"did not find expected '-' indicator",
	"did not find expected key",
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
	"found duplicate %TAG directive",
}

// yamlError turns a YAML syntax error into an Error at the line (and, for an
// unclosed bracket, the column) it names.
func yamlError(path string, err error, data []byte) *Error {
	msg := err.Error()
	e := &Error{File: path, Line: 1, Col: 1, Msg: strings.TrimPrefix(msg, "yaml: ")}
	m := yamlLine.FindStringSubmatch(msg)
	if m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Msg = msg[len(m[0]):]
	}
	parser := false
	for _, p := range yamlParserProblems {
		parser = parser || e.Msg == p
	}
	lines := strings.Split(string(data), "\n")
	indent := func() {
		if e.Line >= 1 && e.Line <= len(lines) {
			e.Col = len(lines[e.Line-1]) - len(strings.TrimLeft(lines[e.Line-1], " ")) + 1
		}
	}
	if !parser {
		if m != nil {
			indent()
		}
		return e
	}
	if m != nil {
		e.Line++
	}
	if open := strings.HasSuffix(e.Msg, "'}'") || strings.HasSuffix(e.Msg, "']'"); open {
		opener := byte('{')
		if strings.HasSuffix(e.Msg, "']'") {
			opener = '['
		}
		e.Msg = fmt.Sprintf("%c is not closed (%s)", opener, e.Msg)
		// The context is the unclosed bracket's line; when it is the first
		// line, yaml.v3 names the line where it stopped instead.
		for _, ln := range []int{e.Line, e.Line - 1} {
			if ln >= 1 && ln <= len(lines) {
				if col := unclosed(lines[ln-1], opener); col > 0 {
					e.Line, e.Col = ln, col
					return e
				}
			}
		}
		return e
	}
	indent()
	return e
}

// unclosed returns the 1-based column of the first bracket opener on line
// that the line does not close, outside quotes and comments; 0 when none.
func unclosed(line string, opener byte) int {
	closer := map[byte]byte{'{': '}', '[': ']'}[opener]
	var stack []int
	var quote byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '#' && (i == 0 || line[i-1] == ' '):
			i = len(line)
		case c == opener:
			stack = append(stack, i)
		case c == closer && len(stack) > 0:
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) == 0 {
		return 0
	}
	return stack[0] + 1
}

// secretFileKeys are the keys whose value names a file holding a secret.
var secretFileKeys = map[string]bool{"password_file": true, "token_file": true}

// collectSecrets walks the whole file, component settings included, for the
// ${NAME} it uses and the secret files it names, and keeps their values so
// that Redact can remove them from what leaves the process.
func (j *Job) collectSecrets(path string, root *yaml.Node, lookup func(string) (string, bool)) {
	seen := map[string]bool{}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		switch n.Kind {
		case yaml.DocumentNode, yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				walk(v)
				if secretFileKeys[k.Value] && v.Kind == yaml.ScalarNode && v.Value != "" {
					p := varPattern.ReplaceAllStringFunc(v.Value, func(m string) string { s, _ := lookup(m[2 : len(m)-1]); return s })
					j.SecretFiles = append(j.SecretFiles, SecretFile{Key: k.Value, Path: p, Templated: p != v.Value, Pos: Pos{File: path, Line: v.Line, Col: v.Column}})
					if b, err := os.ReadFile(p); err == nil {
						j.addSecret(strings.TrimSpace(string(b)))
					}
				}
			}
		case yaml.ScalarNode:
			for _, m := range varPattern.FindAllStringSubmatch(n.Value, -1) {
				name := m[1]
				if v, ok := lookup(name); ok {
					j.addSecret(v)
				}
				if !seen[name] {
					seen[name] = true
					j.Vars = append(j.Vars, Var{Name: name, Pos: Pos{File: path, Line: n.Line, Col: n.Column}})
				}
			}
		}
	}
	walk(root)
}

func (j *Job) addSecret(v string) {
	if len(v) >= MinSecretLen && !slices.Contains(j.secrets, v) {
		j.secrets = append(j.secrets, v)
	}
}

func (j *Job) applyDefaults() {
	if j.Checkpoint.Store == "" {
		j.Checkpoint.Store = DefaultCheckpointStore
	}
	if !j.Checkpoint.Pos.has("interval") {
		j.Checkpoint.Interval = DefaultCheckpointInterval
	}
	if !j.Checkpoint.Pos.has("retain") {
		j.Checkpoint.Retain = DefaultRetain
	}
	if !j.Drain.Pos.has("deadline") {
		j.Drain.Deadline = DefaultDrainDeadline
	}
	if j.Worker == "" {
		j.Worker = DefaultWorker
	}
	if j.Metrics.Listen == "" {
		j.Metrics.Listen = DefaultMetricsListen
	}
	if j.Metrics.AdminListen == "" {
		j.Metrics.AdminListen = DefaultAdminListen
		if j.Metrics.Listen == "off" {
			j.Metrics.AdminListen = "off" // no HTTP at all unless asked for
		}
	}
	if j.SLA.Latency == 0 {
		j.SLA.Latency = DefaultSLALatency
	}
	if j.SLA.For == 0 {
		j.SLA.For = DefaultSLAFor
	}
	if j.SLA.DeadLetters == 0 {
		j.SLA.DeadLetters = DefaultSLADeadLetters
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
		if p.IdleTimeout == 0 {
			p.IdleTimeout = DefaultIdleTimeout
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
	if msg := checkStore(j.Checkpoint.Store); msg != "" {
		add(j.Checkpoint.Pos.Key("store").Errorf("checkpoint store %q %s", j.Checkpoint.Store, msg))
	}
	if j.Checkpoint.Interval <= 0 {
		add(j.Checkpoint.Pos.Key("interval").Errorf("checkpoint interval must be positive, got %s", j.Checkpoint.Interval))
	}
	if j.Checkpoint.Retain < 1 {
		add(j.Checkpoint.Pos.Key("retain").Errorf("checkpoint retain must be at least 1, got %d", j.Checkpoint.Retain))
	}
	if j.Drain.Deadline <= 0 {
		add(j.Drain.Pos.Key("deadline").Errorf("drain deadline must be positive, got %s", j.Drain.Deadline))
	}
	if b := j.Memory.TaskBuffer; b < 0 || b > 1<<40 {
		add(j.Memory.Pos.Key("task_buffer").Errorf("memory task_buffer must be between 0 (the default) and 1TiB, got %d bytes", b))
	}
	if f := j.Memory.Fetch; f < 0 || f > 1<<30 {
		add(j.Memory.Pos.Key("fetch").Errorf("memory fetch must be between 0 (the default) and 1GiB, got %d bytes", f))
	}
	if g := j.Memory.GCPercent; g < 0 || g > 10000 {
		add(j.Memory.Pos.Key("gc_percent").Errorf("memory gc_percent must be between 1 and 10000 (0 or none: the default), got %d", g))
	}
	for _, l := range []struct{ key, addr string }{{"listen", j.Metrics.Listen}, {"admin_listen", j.Metrics.AdminListen}} {
		if msg := checkListen(l.addr); msg != "" {
			add(j.Metrics.Pos.Key(l.key).Errorf("metrics %s %q %s", l.key, l.addr, msg))
		}
	}
	if l, a := j.Metrics.Listen, j.Metrics.AdminListen; l != "off" && l == a {
		add(j.Metrics.Pos.Key("admin_listen").Errorf("metrics admin_listen must differ from listen: POST /drain stays off the public endpoint"))
	}
	if k := j.Kafka; k != nil {
		if len(k.Brokers) == 0 && k.Pos.Line > 0 {
			add(k.Pos.Key("brokers").Errorf("kafka brokers must name at least one host:port"))
		}
		errs = append(errs, k.Validate()...)
	}
	if j.SLA.Latency < 0 || j.SLA.For < 0 || j.SLA.DeadLetters < 0 {
		add(j.SLA.Pos.Errorf("sla needs positive latency, for and dead_letters_per_second"))
	}
	if j.Scaling.MinWorkers < 0 || j.Scaling.MaxWorkers < j.Scaling.MinWorkers {
		add(j.Scaling.Pos.Errorf("scaling needs 0 <= min_workers <= max_workers, got %d and %d", j.Scaling.MinWorkers, j.Scaling.MaxWorkers))
	}
	names := map[string]bool{}
	needKafka := false
	for i := range j.Pipelines {
		p := &j.Pipelines[i]
		if p.Name == "" && p.Pos.keys["name"] != [2]int{} {
			add(p.Pos.Key("name").Errorf("pipeline name must not be empty"))
		}
		if p.Name != "" {
			if names[p.Name] {
				add(p.Pos.Key("name").Errorf("pipeline name %q is used twice", p.Name))
			}
			names[p.Name] = true
		}
		src := p.Source
		kinds := 0
		for _, set := range []bool{src.Kafka != nil, src.File != nil, src.Generate != nil} {
			if set {
				kinds++
			}
		}
		switch {
		case kinds > 1:
			add(src.Pos.Errorf("a source is one of kafka, file or generate, not several"))
		case kinds == 0 && src.Pos.Line > 0:
			add(src.Pos.Errorf("a source needs kafka, file or generate"))
		case src.Generate != nil:
			g := src.Generate
			if g.Rate < 0 {
				add(g.Pos.Key("rate").Errorf("generate rate must be 0 (unthrottled) or more records per second, got %d", g.Rate))
			}
			if g.Count < 0 {
				add(g.Pos.Key("count").Errorf("generate count must be 0 (unbounded) or more, got %d", g.Count))
			}
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
		if p.AllowedLateness < 0 {
			add(p.Pos.Key("allowed_lateness").Errorf("allowed_lateness must not be negative, got %s", p.AllowedLateness))
		}
		if p.IdleTimeout < 0 {
			add(p.Pos.Key("idle_timeout").Errorf("idle_timeout must be positive, got %s", p.IdleTimeout))
		}
		if p.ShufflePartitions < 0 {
			add(p.Pos.Key("shuffle_partitions").Errorf("shuffle_partitions must be 0 (as many as the source topics) or more, got %d", p.ShufflePartitions))
		}
		switch p.Aggregation {
		case "", AggregationPerPartition:
		case AggregationShuffle:
			if src.Kafka == nil {
				add(p.Pos.Key("aggregation").Errorf("aggregation: shuffle goes through Kafka and needs a kafka source; a file or generate source is one task, whose aggregation: %s is already exact", AggregationPerPartition))
			}
		default:
			add(p.Pos.Key("aggregation").Errorf("aggregation must be %s or %s, got %q", AggregationShuffle, AggregationPerPartition, p.Aggregation))
		}
		if d := p.Dedup; d != nil && d.Within <= 0 && d.Pos.keys["within"] != [2]int{} {
			add(d.Pos.Key("within").Errorf("dedup within must be positive, got %s", d.Within))
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

// checkStore says what is wrong with a checkpoint store URL, "" when nothing.
func checkStore(s string) string {
	const want = "must be gs://bucket/path, s3://bucket/path, azblob://container/path or file:///dir (file://./dir for a directory relative to the working directory)"
	u, err := url.Parse(s)
	if err != nil {
		return want
	}
	switch u.Scheme {
	case "file":
		if rel, ok := strings.CutPrefix(s, "file://"); ok && (strings.HasPrefix(rel, "./") || strings.HasPrefix(rel, "../")) {
			return ""
		}
		if (u.Host != "" && u.Host != "localhost") || u.Path == "" {
			return want
		}
	case "gs", "s3", "azblob", "az":
		if !strings.HasPrefix(s, u.Scheme+"://") || u.Host == "" {
			return want
		}
	default:
		return want
	}
	return ""
}

// checkListen says what is wrong with a listen address, "" when nothing.
func checkListen(addr string) string {
	if addr == "off" {
		return ""
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "must be host:port, :port or off"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "must have a port number between 0 and 65535"
	}
	return ""
}

// Redact returns s with every secret of the job removed: the values that came
// from ${NAME} (at least MinSecretLen long) or a secret file, URL userinfo and
// URL query strings. Logs, errors, dead letters, metrics, status pages and
// rendered manifests go through it.
func (j *Job) Redact(s string) string {
	return newRedactor(j.secrets)(s)
}

// Redactor returns Redact as a function, with its replacements built once.
func (j *Job) Redactor() func(string) string {
	return newRedactor(j.secrets)
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
