package deploy

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// TestWorkloadIdentity: a job that asks for a cloud identity gets a worker
// service account with each cloud's annotation, its pods run as it, and AKS
// pods carry the label Azure's webhook selects; a job that asks for none
// renders as before.
func TestWorkloadIdentity(t *testing.T) {
	spec := JobSpec{Job: "acme", Image: "sluice:dev", Worker: "n2d-standard-1", Brokers: []string{"kafka:9092"}}
	workerSA := func(objs []any) (*corev1.ServiceAccount, *appsv1.StatefulSet) {
		var sa *corev1.ServiceAccount
		var sts *appsv1.StatefulSet
		for _, o := range objs {
			switch o := o.(type) {
			case *corev1.ServiceAccount:
				if o.Name == "acme" {
					sa = o
				}
			case *appsv1.StatefulSet:
				sts = o
			}
		}
		return sa, sts
	}

	sa, sts := workerSA(Objects(spec))
	if sa != nil || sts.Spec.Template.Spec.ServiceAccountName != "" {
		t.Fatalf("no identity asked for: worker service account %v, pods run as %q", sa, sts.Spec.Template.Spec.ServiceAccountName)
	}

	spec.WorkloadIdentity = WorkloadIdentity{
		GCPServiceAccount: "sluice@acme.iam.gserviceaccount.com",
		AWSRoleARN:        "arn:aws:iam::123456789012:role/sluice",
		AzureClientID:     "00000000-0000-0000-0000-000000000001",
	}
	sa, sts = workerSA(Objects(spec))
	if sa == nil {
		t.Fatal("no worker service account rendered")
	}
	want := map[string]string{
		"iam.gke.io/gcp-service-account":    "sluice@acme.iam.gserviceaccount.com",
		"eks.amazonaws.com/role-arn":        "arn:aws:iam::123456789012:role/sluice",
		"azure.workload.identity/client-id": "00000000-0000-0000-0000-000000000001",
	}
	if diff := cmp.Diff(want, sa.Annotations); diff != "" {
		t.Errorf("service account annotations (-want +got):\n%s", diff)
	}
	if got := sts.Spec.Template.Spec.ServiceAccountName; got != "acme" {
		t.Errorf("pods run as %q, want acme", got)
	}
	if got := sts.Spec.Template.Labels["azure.workload.identity/use"]; got != "true" {
		t.Errorf("pod label azure.workload.identity/use = %q, want true", got)
	}
	if _, ok := sts.Spec.Selector.MatchLabels["azure.workload.identity/use"]; ok {
		t.Error("the selector changed: an existing StatefulSet could not be updated")
	}

	spec.WorkloadIdentity = WorkloadIdentity{AWSRoleARN: "arn:aws:iam::123456789012:role/sluice"}
	sa, sts = workerSA(Objects(spec))
	if diff := cmp.Diff(map[string]string{"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/sluice"}, sa.Annotations); diff != "" {
		t.Errorf("AWS only: annotations (-want +got):\n%s", diff)
	}
	if _, ok := sts.Spec.Template.Labels["azure.workload.identity/use"]; ok {
		t.Error("AWS only: pods carry Azure's label")
	}
}
