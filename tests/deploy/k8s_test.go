package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// cnpgVersion is the CloudNativePG release whose CRDs the Postgres resources are
// validated against; its Go module carries them (config/crd/bases).
const cnpgVersion = "v1.25.1"

// render builds a kustomization the way `kubectl kustomize` does.
func render(t *testing.T, dir string) []map[string]any {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize %s: %v", dir, err)
	}
	var out []map[string]any
	for _, r := range res.Resources() {
		m, err := r.Map()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// typed decodes an object strictly into the Kubernetes type of its kind: unknown or
// misspelled fields and wrong types fail.
func typed(obj map[string]any) (any, error) {
	var v any
	switch obj["kind"] {
	case "Deployment":
		v = &appsv1.Deployment{}
	case "Service":
		v = &corev1.Service{}
	case "ConfigMap":
		v = &corev1.ConfigMap{}
	case "PodDisruptionBudget":
		v = &policyv1.PodDisruptionBudget{}
	case "HorizontalPodAutoscaler":
		v = &autoscalingv2.HorizontalPodAutoscaler{}
	case "Job":
		v = &batchv1.Job{}
	default:
		return nil, nil
	}
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return v, dec.Decode(v)
}

// crdSchemas compiles the openAPIV3Schema of every CRD file in dir, keyed by kind,
// closed against unknown fields as the API server's pruning would silently drop them.
func crdSchemas(t *testing.T, dir string) map[string]*jsonschema.Schema {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs in %s: %v", dir, err)
	}
	out := map[string]*jsonschema.Schema{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var crd struct {
			Spec struct {
				Names    struct{ Kind string }
				Versions []struct {
					Name   string
					Schema struct {
						OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
					}
				}
			}
		}
		if err := yaml.Unmarshal(raw, &crd); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, v := range crd.Spec.Versions {
			s := v.Schema.OpenAPIV3Schema
			closeObjects(s)
			c := jsonschema.NewCompiler()
			url := "mem://" + crd.Spec.Names.Kind + "/" + v.Name
			if err := c.AddResource(url, s); err != nil {
				t.Fatal(err)
			}
			sch, err := c.Compile(url)
			if err != nil {
				t.Fatalf("compile %s %s: %v", crd.Spec.Names.Kind, v.Name, err)
			}
			out[crd.Spec.Names.Kind+"/"+v.Name] = sch
		}
	}
	return out
}

// closeObjects forbids properties a schema does not declare, unless it says to keep them.
func closeObjects(s any) {
	m, ok := s.(map[string]any)
	if !ok {
		if l, ok := s.([]any); ok {
			for _, e := range l {
				closeObjects(e)
			}
		}
		return
	}
	if props, ok := m["properties"].(map[string]any); ok && len(props) > 0 {
		if _, set := m["additionalProperties"]; !set && m["x-kubernetes-preserve-unknown-fields"] != true {
			m["additionalProperties"] = false
		}
	}
	for k, v := range m {
		if k != "enum" && k != "default" && k != "example" {
			closeObjects(v)
		}
	}
}

func cnpgCRDs(t *testing.T) map[string]*jsonschema.Schema {
	t.Helper()
	out, err := exec.Command("go", "mod", "download", "-json", "github.com/cloudnative-pg/cloudnative-pg@"+cnpgVersion).Output()
	if err != nil {
		t.Fatalf("go mod download cloudnative-pg %s: %v", cnpgVersion, err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download: %s", out)
	}
	return crdSchemas(t, filepath.Join(mod.Dir, "config", "crd", "bases"))
}

func TestKubernetesOverlays(t *testing.T) {
	cnpg := cnpgCRDs(t)
	for _, env := range []string{"dev", "prod"} {
		objs := render(t, filepath.Join("..", "..", "deploy", "k8s", "overlays", env))
		kinds := map[string]int{}
		memLimit, goMemLimit := map[string]string{}, map[string]string{} // per service
		for _, o := range objs {
			kind := o["kind"].(string)
			kinds[kind]++
			meta := o["metadata"].(map[string]any)
			where := fmt.Sprintf("%s: %s %s", env, kind, meta["name"])
			api := o["apiVersion"].(string)
			switch {
			case strings.HasPrefix(api, "postgresql.cnpg.io/"):
				sch := cnpg[kind+"/"+strings.TrimPrefix(api, "postgresql.cnpg.io/")]
				if sch == nil {
					t.Errorf("%s: no CloudNativePG %s schema for %s", where, cnpgVersion, api)
					continue
				}
				inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(mustJSON(t, o)))
				if err != nil {
					t.Fatal(err)
				}
				if err := sch.Validate(inst); err != nil {
					t.Errorf("%s: %v", where, err)
				}
			case api == "kafka.strimzi.io/v1beta2" && kind == "KafkaTopic":
				checkTopic(t, where, o)
			default:
				v, err := typed(o)
				if err != nil {
					t.Errorf("%s: %v", where, err)
				} else if v == nil {
					t.Errorf("%s: unexpected kind %s (%s)", where, kind, api)
				} else {
					checkObject(t, env, where, v)
					switch o := v.(type) {
					case *appsv1.Deployment:
						memLimit[o.Labels["app.kubernetes.io/name"]] = o.Spec.Template.Spec.Containers[0].Resources.Limits.Memory().String()
					case *corev1.ConfigMap:
						goMemLimit[o.Labels["app.kubernetes.io/name"]] = o.Data["GOMEMLIMIT"]
					}
				}
			}
		}
		for svc, limit := range memLimit {
			checkGoMemLimit(t, fmt.Sprintf("%s: %s", env, svc), goMemLimit[svc], limit)
		}
		want := map[string]int{"Deployment": 5, "Service": 5, "ConfigMap": 5, "PodDisruptionBudget": 5,
			"HorizontalPodAutoscaler": 5, "Job": 5, "KafkaTopic": 6, "Cluster": 1, "Database": 6}
		if fmt.Sprint(kinds) != fmt.Sprint(want) {
			t.Errorf("%s renders %v, want %v", env, kinds, want)
		}
	}
}

// checkGoMemLimit wants the Go runtime's soft memory limit set below the container's
// memory limit, with room for what the runtime does not count (the binary's pages): at
// or above it the collector would not work harder before the kernel kills the pod.
func checkGoMemLimit(t *testing.T, where, goMemLimit, containerLimit string) {
	t.Helper()
	soft, err := resource.ParseQuantity(strings.TrimSuffix(goMemLimit, "B")) // 150MiB -> 150Mi
	if err != nil || !strings.HasSuffix(goMemLimit, "MiB") {
		t.Errorf("%s: GOMEMLIMIT %q, want a size in MiB", where, goMemLimit)
		return
	}
	hard := resource.MustParse(containerLimit)
	if ratio := float64(soft.Value()) / float64(hard.Value()); ratio < 0.6 || ratio > 0.9 {
		t.Errorf("%s: GOMEMLIMIT %s is %.0f%% of the container's %s limit, want 60-90%%", where, goMemLimit, 100*ratio, containerLimit)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func checkTopic(t *testing.T, where string, o map[string]any) {
	// Strimzi publishes its CRDs neither as a Go module nor in its Maven artifacts, so
	// the topics are checked against what the services declare instead.
	spec, _ := o["spec"].(map[string]any)
	cfg, _ := spec["config"].(map[string]any)
	labels, _ := o["metadata"].(map[string]any)["labels"].(map[string]any)
	for k := range spec {
		if k != "topicName" && k != "partitions" && k != "replicas" && k != "config" {
			t.Errorf("%s: unknown spec field %s", where, k)
		}
	}
	if fmt.Sprint(spec["partitions"]) != "6" || fmt.Sprint(cfg["retention.ms"]) != "-1" || fmt.Sprint(cfg["retention.bytes"]) != "-1" ||
		labels["strimzi.io/cluster"] != "orderflow" {
		t.Errorf("%s: want 6 partitions, unlimited retention and the orderflow cluster label: %v %v", where, spec, labels)
	}
}

// checkObject holds the rules every service resource follows.
func checkObject(t *testing.T, env, where string, v any) {
	switch o := v.(type) {
	case *appsv1.Deployment:
		c := o.Spec.Template.Spec.Containers[0]
		svc := o.Labels["app.kubernetes.io/name"]
		if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
			t.Errorf("%s: probes must be /readyz and /healthz", where)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s: needs cpu requests and a memory limit", where)
		}
		if o.Spec.Selector.MatchLabels["app.kubernetes.io/name"] != svc || svc == "" {
			t.Errorf("%s: selector %v does not select its service %q", where, o.Spec.Selector.MatchLabels, svc)
		}
		version, err := os.ReadFile(filepath.Join("..", "..", "services", svc, "VERSION"))
		if err != nil {
			t.Fatal(err)
		}
		if want := "orderflow/" + svc + ":" + strings.TrimSpace(string(version)); c.Image != want {
			t.Errorf("%s: image %s, want %s (services/%s/VERSION)", where, c.Image, want, svc)
		}
		var secret, config string
		for _, e := range c.EnvFrom {
			if e.SecretRef != nil {
				secret = e.SecretRef.Name
			}
			if e.ConfigMapRef != nil {
				config = e.ConfigMapRef.Name
			}
		}
		if secret != "orderflow-"+svc+"-secrets" || !strings.HasPrefix(config, "orderflow-"+svc+"-") {
			t.Errorf("%s: env from secret %q and config %q, want its own", where, secret, config)
		}
		if env == "prod" && (o.Spec.Replicas == nil || *o.Spec.Replicas < 2) {
			t.Errorf("%s: prod runs at least 2 replicas", where)
		}
	case *corev1.ConfigMap:
		svc := o.Labels["app.kubernetes.io/name"]
		keys := map[string]bool{"ORDERFLOW_DATABASE_URL": true, "ORDERFLOW_ADMIN_TOKEN": true} // from the Secret
		for k := range o.Data {
			keys[k] = true
		}
		checkEnv(t, where, svc, keys)
		if want := map[string]string{"dev": "debug", "prod": "info"}[env]; o.Data["ORDERFLOW_LOG_LEVEL"] != want {
			t.Errorf("%s: log level %q, want the overlay's %q", where, o.Data["ORDERFLOW_LOG_LEVEL"], want)
		}
	case *batchv1.Job:
		args := o.Spec.Template.Spec.InitContainers[0].Args
		if len(args) != 1 || args[0] != "migrate" || o.Spec.Template.Spec.Containers[0].Args[0] != "register-schemas" {
			t.Errorf("%s: the job must migrate, then register schemas", where)
		}
	}
}
