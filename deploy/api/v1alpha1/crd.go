package v1alpha1

import (
	"fmt"
	"reflect"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// CRD returns the CustomResourceDefinition of SluiceJob, its OpenAPI schema
// generated from Spec and Status: one served and stored version, the status
// subresource, and the printer columns `kubectl get sluicejobs` shows.
func CRD() map[string]any {
	root := map[string]any{
		"type":     "object",
		"required": []any{"spec"},
		"properties": map[string]any{
			"apiVersion": map[string]any{"type": "string"},
			"kind":       map[string]any{"type": "string"},
			"metadata":   map[string]any{"type": "object"},
			"spec":       schemaOf(reflect.TypeFor[Spec](), true),
			"status":     schemaOf(reflect.TypeFor[Status](), false),
		},
	}
	col := func(name, typ, path, desc string) map[string]any {
		return map[string]any{"name": name, "type": typ, "jsonPath": path, "description": desc}
	}
	return map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata":   map[string]any{"name": Resource + "." + Group},
		"spec": map[string]any{
			"group": Group,
			"scope": "Namespaced",
			"names": map[string]any{
				"kind": Kind, "listKind": ListKind, "plural": Resource, "singular": Singular,
				"shortNames": []any{ShortName}, "categories": []any{"sluice"},
			},
			"versions": []any{map[string]any{
				"name": Version, "served": true, "storage": true,
				"schema":       map[string]any{"openAPIV3Schema": root},
				"subresources": map[string]any{"status": map[string]any{}},
				"additionalPrinterColumns": []any{
					col("Phase", "string", ".status.phase", "Where the job is in its lifecycle."),
					col("Desired", "integer", ".status.desiredWorkers", "Workers the autoscaler asks for."),
					col("Ready", "integer", ".status.readyWorkers", "Workers ready."),
					col("Backlog", "integer", ".status.backlogRecords", "Records not yet committed."),
					col("Latency", "integer", ".status.latencySeconds", "Seconds between now and the oldest watermark."),
					col("Age", "date", ".metadata.creationTimestamp", ""),
				},
			}},
		},
	}
}

// CRDYAML is CRD as YAML, as `sluice render --crd` writes it.
func CRDYAML() []byte {
	b, err := yaml.Marshal(CRD())
	if err != nil {
		panic(fmt.Sprintf("v1alpha1: marshal CRD: %v", err)) // static data: cannot fail
	}
	return b
}

// enums are the values a string type may take.
var enums = map[reflect.Type][]any{
	reflect.TypeFor[Phase]():            phasesAny(),
	reflect.TypeFor[CheckpointPolicy](): {string(CheckpointsRetain), string(CheckpointsDelete)},
}

func phasesAny() []any {
	out := make([]any, len(Phases))
	for i, p := range Phases {
		out[i] = string(p)
	}
	return out
}

// schemaOf returns the structural OpenAPI schema of a Go type as its JSON
// encoding sees it. required says whether fields without omitempty are
// required (not for Status: the operator fills it piecemeal).
func schemaOf(t reflect.Type, required bool) map[string]any {
	switch t {
	case reflect.TypeFor[metav1.Time]():
		return map[string]any{"type": "string", "format": "date-time"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return schemaOf(t.Elem(), required)
	case reflect.String:
		s := map[string]any{"type": "string"}
		if e, ok := enums[t]; ok {
			s["enum"] = e
		}
		return s
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int32:
		return map[string]any{"type": "integer", "format": "int32"}
	case reflect.Int, reflect.Int64:
		return map[string]any{"type": "integer", "format": "int64"}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem(), true)}
	case reflect.Slice:
		s := map[string]any{"type": "array", "items": schemaOf(t.Elem(), true)}
		if t.Elem() == reflect.TypeFor[metav1.Condition]() {
			s["x-kubernetes-list-type"] = "map"
			s["x-kubernetes-list-map-keys"] = []any{"type"}
		}
		return s
	case reflect.Struct:
		props := map[string]any{}
		var req []any
		for f := range t.Fields() {
			if !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" || name == "" {
				continue
			}
			props[name] = schemaOf(f.Type, true)
			if required && !strings.Contains(opts, "omitempty") {
				req = append(req, name)
			}
		}
		s := map[string]any{"type": "object", "properties": props}
		if len(req) > 0 {
			s["required"] = req
		}
		return s
	}
	panic(fmt.Sprintf("v1alpha1: no schema for %s", t)) // a programming error, caught by the CRD test
}

// FromUnstructured converts what a dynamic client or informer returns.
func FromUnstructured(u *unstructured.Unstructured) (*SluiceJob, error) {
	var j SluiceJob
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &j); err != nil {
		return nil, fmt.Errorf("v1alpha1: decode %s/%s: %w", u.GetNamespace(), u.GetName(), err)
	}
	return &j, nil
}

// ToUnstructured converts a SluiceJob for a dynamic client, setting its
// apiVersion and kind.
func ToUnstructured(j *SluiceJob) (*unstructured.Unstructured, error) {
	j.APIVersion, j.Kind = APIVersion, Kind
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(j)
	if err != nil {
		return nil, fmt.Errorf("v1alpha1: encode %s/%s: %w", j.Namespace, j.Name, err)
	}
	return &unstructured.Unstructured{Object: m}, nil
}
