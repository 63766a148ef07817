package scaler

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	corev1 "k8s.io/api/core/v1"
)

// The functions below let another control loop (the operator, which
// discovers its jobs by watch) drive the same signals and policy as the
// Coordinator, without its static job list or its own API calls.

// SampleKafka reads a job's end, start and committed offsets, as the
// Coordinator does each interval: j.Name is the consumer group, j.Topics or
// j.TopicRegex its input (else the topics the group committed).
func SampleKafka(ctx context.Context, adm *kadm.Client, j JobConfig, now time.Time) (KafkaSample, error) {
	return kafkaReader{adm: adm}.sample(ctx, j, now)
}

// RequestedCPUs is the CPU request of a pod's containers in cores, 1 when
// none is set: CPU utilization is the counter's rate over it.
func RequestedCPUs(cs []corev1.Container) float64 { return requestedCPUs(cs) }

// sluice_job_info{job, tenant, application} is 1 for every job a control
// loop watches: the fleet view joins it on job to group jobs by tenant and
// application (an info metric, one series per job, so that the labels cost
// no series per worker or pipeline).
const (
	jobInfoName = "sluice_job_info"
	jobInfoHelp = "1 for every job watched, with its tenant and application: join it on job to group the fleet."
)

var jobInfoLabels = []string{"job", "tenant", "application"}

// JobInfoDesc describes sluice_job_info, for a collector that exports it
// from what it watches (the operator, from each SluiceJob's labels).
var JobInfoDesc = prometheus.NewDesc(jobInfoName, jobInfoHelp, jobInfoLabels, nil)
