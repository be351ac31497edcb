package deploy

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/fleetcal/fleetcal/cluster"
)

// scaledObject mirrors the fields of KEDA's keda.sh/v1alpha1 ScaledObject
// (github.com/kedacore/keda, apis/keda/v1alpha1/scaledobject_types.go) that
// k8s/keda-scaledobject.yaml uses. KEDA's module is not a dependency: its
// Go API drags in most of Kubernetes' controller libraries; a field added to
// the manifest must be added here, with KEDA's spelling.
type scaledObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		ScaleTargetRef struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Name       string `json:"name"`
		} `json:"scaleTargetRef"`
		PollingInterval *int32 `json:"pollingInterval"`
		CooldownPeriod  *int32 `json:"cooldownPeriod"`
		MinReplicaCount *int32 `json:"minReplicaCount"`
		MaxReplicaCount *int32 `json:"maxReplicaCount"`
		Triggers        []struct {
			Type     string            `json:"type"`
			Name     string            `json:"name"`
			Metadata map[string]string `json:"metadata"`
		} `json:"triggers"`
	} `json:"spec"`
}

// newObject returns the Go type of a manifest's apiVersion and kind.
func newObject(tm metav1.TypeMeta) (any, error) {
	switch tm.APIVersion + " " + tm.Kind {
	case "v1 Secret":
		return &corev1.Secret{}, nil
	case "v1 PersistentVolumeClaim":
		return &corev1.PersistentVolumeClaim{}, nil
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, nil
	case "v1 Service":
		return &corev1.Service{}, nil
	case "apps/v1 StatefulSet":
		return &appsv1.StatefulSet{}, nil
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, nil
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, nil
	case "batch/v1 Job":
		return &batchv1.Job{}, nil
	case "keda.sh/v1alpha1 ScaledObject":
		return &scaledObject{}, nil
	}
	return nil, fmt.Errorf("apiVersion %q kind %q: not a type this test knows", tm.APIVersion, tm.Kind)
}

// decodeManifests decodes every document of the files strictly into its
// k8s.io/api type: an unknown or misspelled field, or a value of the wrong
// type, is an error naming the file and the document.
func decodeManifests(files map[string][]byte) ([]any, error) {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var objs []any
	for _, name := range names {
		for i, doc := range bytes.Split(files[name], []byte("\n---\n")) {
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				return nil, fmt.Errorf("%s: document %d: %w", name, i+1, err)
			}
			obj, err := newObject(tm)
			if err != nil {
				return nil, fmt.Errorf("%s: document %d: %w", name, i+1, err)
			}
			if err := yaml.UnmarshalStrict(doc, obj); err != nil {
				return nil, fmt.Errorf("%s: document %d (%s): %w", name, i+1, tm.Kind, err)
			}
			objs = append(objs, obj)
		}
	}
	return objs, nil
}

func readManifests(t *testing.T) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob("k8s/*.yaml")
	jobs, jerr := filepath.Glob("k8s/job/*.yaml")
	if paths = append(paths, jobs...); err != nil || jerr != nil || len(paths) == 0 {
		t.Fatalf("no k8s/*.yaml: %v %v", err, jerr)
	}
	files := map[string][]byte{}
	for _, p := range paths {
		if files[p], err = os.ReadFile(p); err != nil {
			t.Fatal(err)
		}
	}
	return files
}

// manifests is the decoded set, by kind and name.
type manifests struct {
	secrets      map[string]*corev1.Secret
	configMaps   map[string]*corev1.ConfigMap
	services     map[string]*corev1.Service
	statefulSets map[string]*appsv1.StatefulSet
	deployments  map[string]*appsv1.Deployment
	pdbs         map[string]*policyv1.PodDisruptionBudget
	jobs         map[string]*batchv1.Job
	scaled       map[string]*scaledObject
	claims       map[string]*corev1.PersistentVolumeClaim
}

func index(objs []any) manifests {
	m := manifests{map[string]*corev1.Secret{}, map[string]*corev1.ConfigMap{}, map[string]*corev1.Service{},
		map[string]*appsv1.StatefulSet{}, map[string]*appsv1.Deployment{}, map[string]*policyv1.PodDisruptionBudget{},
		map[string]*batchv1.Job{}, map[string]*scaledObject{}, map[string]*corev1.PersistentVolumeClaim{}}
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.Secret:
			m.secrets[o.Name] = o
		case *corev1.ConfigMap:
			m.configMaps[o.Name] = o
		case *corev1.Service:
			m.services[o.Name] = o
		case *appsv1.StatefulSet:
			m.statefulSets[o.Name] = o
		case *appsv1.Deployment:
			m.deployments[o.Name] = o
		case *policyv1.PodDisruptionBudget:
			m.pdbs[o.Name] = o
		case *batchv1.Job:
			m.jobs[o.Name] = o
		case *scaledObject:
			m.scaled[o.Name] = o
		case *corev1.PersistentVolumeClaim:
			m.claims[o.Name] = o
		}
	}
	return m
}

func TestKubernetesManifests(t *testing.T) {
	objs, err := decodeManifests(readManifests(t))
	if err != nil {
		t.Fatal(err)
	}
	m := index(objs)
	secret, nats, worker := m.secrets["fleetcal-nats"], m.statefulSets["nats"], m.deployments["fleetcal-worker"]
	pdb, so, job := m.pdbs["fleetcal-worker"], m.scaled["fleetcal-worker"], m.jobs["fleetcal-quantize"]
	if secret == nil || nats == nil || worker == nil || pdb == nil || so == nil || job == nil ||
		m.services["nats"] == nil || m.services["nats-headless"] == nil || m.configMaps["nats-config"] == nil {
		t.Fatalf("k8s/ lacks one of Secret fleetcal-nats, StatefulSet nats, Services nats and nats-headless, ConfigMap nats-config, Deployment, PodDisruptionBudget and ScaledObject fleetcal-worker, Job fleetcal-quantize")
	}

	// Selectors select their pods.
	selects := func(what string, sel *metav1.LabelSelector, podLabels map[string]string) {
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil || s.Empty() || !s.Matches(labels.Set(podLabels)) {
			t.Errorf("%s: selector %v does not select the pods labelled %v (%v)", what, sel, podLabels, err)
		}
	}
	selects("Deployment fleetcal-worker", worker.Spec.Selector, worker.Spec.Template.Labels)
	selects("PodDisruptionBudget fleetcal-worker", pdb.Spec.Selector, worker.Spec.Template.Labels)
	selects("StatefulSet nats", nats.Spec.Selector, nats.Spec.Template.Labels)
	for _, name := range []string{"nats", "nats-headless"} {
		selects("Service "+name, &metav1.LabelSelector{MatchLabels: m.services[name].Spec.Selector}, nats.Spec.Template.Labels)
	}
	if h := m.services[nats.Spec.ServiceName]; h == nil || h.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("StatefulSet nats: serviceName %q is not a headless Service", nats.Spec.ServiceName)
	}
	if len(nats.Spec.VolumeClaimTemplates) != 1 {
		t.Errorf("StatefulSet nats: want one volume claim template for the JetStream store")
	}
	for _, v := range job.Spec.Template.Spec.Volumes {
		if c := v.PersistentVolumeClaim; c != nil && m.claims[c.ClaimName] == nil {
			t.Errorf("Job fleetcal-quantize: volume %s claims %s, which k8s/ does not hold", v.Name, c.ClaimName)
		}
	}
	if pdb.Spec.MaxUnavailable == nil && pdb.Spec.MinAvailable == nil {
		t.Error("PodDisruptionBudget fleetcal-worker sets neither maxUnavailable nor minAvailable")
	}

	// The worker: resources, probes on the port of --metrics-addr,
	// credentials from the Secret, the NATS Service's client port.
	if len(worker.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("Deployment fleetcal-worker: want one container")
	}
	c := worker.Spec.Template.Spec.Containers[0]
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[r]; !ok {
			t.Errorf("worker: no %s request", r)
		}
		if _, ok := c.Resources.Limits[r]; !ok {
			t.Errorf("worker: no %s limit", r)
		}
	}
	args := map[string]string{}
	for _, a := range c.Args {
		k, v, _ := strings.Cut(a, "=")
		args[k] = v
	}
	_, metricsPort, err := net.SplitHostPort(args["--metrics-addr"])
	if err != nil {
		t.Fatalf("worker --metrics-addr %q: %v", args["--metrics-addr"], err)
	}
	for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" {
			t.Errorf("worker: want a %s probe on GET /healthz, got %+v", name, p)
			continue
		}
		port := p.HTTPGet.Port.String()
		for _, cp := range c.Ports {
			if cp.Name == port {
				port = fmt.Sprint(cp.ContainerPort)
			}
		}
		if port != metricsPort {
			t.Errorf("worker: %s probe on port %s, --metrics-addr serves %s", name, port, metricsPort)
		}
	}
	u, err := url.Parse(args["--nats"])
	if err != nil || m.services[u.Hostname()] == nil || !servicePort(m.services[u.Hostname()], u.Port()) {
		t.Errorf("worker --nats %q: not a port of a Service in k8s/ (%v)", args["--nats"], err)
	}
	for _, spec := range []corev1.PodSpec{worker.Spec.Template.Spec, nats.Spec.Template.Spec, job.Spec.Template.Spec} {
		for _, ct := range spec.Containers {
			for _, e := range ct.Env {
				if r := e.ValueFrom; r != nil && r.SecretKeyRef != nil {
					s := m.secrets[r.SecretKeyRef.Name]
					if _, ok := s.StringData[r.SecretKeyRef.Key]; s == nil || !ok {
						t.Errorf("container %s: env %s reads key %s of Secret %s, which k8s/ does not hold", ct.Name, e.Name, r.SecretKeyRef.Key, r.SecretKeyRef.Name)
					}
				}
			}
		}
	}

	// The autoscaler watches the work queue's stream and consumer.
	if so.Spec.ScaleTargetRef.Kind != "Deployment" || m.deployments[so.Spec.ScaleTargetRef.Name] == nil {
		t.Errorf("ScaledObject: target %+v is not a Deployment of k8s/", so.Spec.ScaleTargetRef)
	}
	if len(so.Spec.Triggers) != 1 || so.Spec.Triggers[0].Type != "nats-jetstream" {
		t.Fatalf("ScaledObject: want one nats-jetstream trigger, got %+v", so.Spec.Triggers)
	}
	md := so.Spec.Triggers[0].Metadata
	if md["stream"] != cluster.StreamName || md["consumer"] != cluster.ConsumerName {
		t.Errorf("ScaledObject: stream %q consumer %q, want cluster's %q and %q", md["stream"], md["consumer"], cluster.StreamName, cluster.ConsumerName)
	}
	host, port, err := net.SplitHostPort(md["natsServerMonitoringEndpoint"])
	if err != nil || m.services[strings.Split(host, ".")[0]] == nil || !servicePort(m.services[strings.Split(host, ".")[0]], port) {
		t.Errorf("ScaledObject: monitoring endpoint %q is not a port of a Service in k8s/ (%v)", md["natsServerMonitoringEndpoint"], err)
	}
}

func servicePort(s *corev1.Service, port string) bool {
	for _, p := range s.Spec.Ports {
		if fmt.Sprint(p.Port) == port {
			return true
		}
	}
	return false
}

// TestKubernetesManifestTypos shows that a misspelled field fails the
// decoding, in the k8s.io/api types and in the local KEDA mirror alike.
func TestKubernetesManifestTypos(t *testing.T) {
	for _, tc := range []struct{ file, from, to, want string }{
		{"k8s/worker.yaml", "readinessProbe:", "readinesProbe:", `unknown field "readinesProbe"`},
		{"k8s/worker.yaml", "  maxUnavailable: 25%\n  selector:", "  maxUnavailabel: 25%\n  selector:", `unknown field "maxUnavailabel"`},
		{"k8s/nats.yaml", "volumeClaimTemplates:", "volumeClaimTemplate:", `unknown field "volumeClaimTemplate"`},
		{"k8s/keda-scaledobject.yaml", "minReplicaCount:", "minReplicas:", `unknown field "minReplicas"`},
		{"k8s/worker.yaml", "cpu: \"2\"\n              memory: 1Gi", "cpu: two\n              memory: 1Gi", "quantities must match"},
	} {
		t.Run(tc.to, func(t *testing.T) {
			files := readManifests(t)
			if !bytes.Contains(files[tc.file], []byte(tc.from)) {
				t.Fatalf("%s has no %q to mutate", tc.file, tc.from)
			}
			files[tc.file] = bytes.Replace(files[tc.file], []byte(tc.from), []byte(tc.to), 1)
			_, err := decodeManifests(files)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.file) {
				t.Errorf("%s with %q: error %v, want one naming the file and %q", tc.file, tc.to, err, tc.want)
			}
		})
	}
}

// TestKubernetesNATSConfig checks the ConfigMap's nats.conf with the real
// nats-server (-t), with the environment the StatefulSet gives it from the
// Secret; and that the server's monitoring port, which the autoscaler reads,
// is open beyond loopback.
func TestKubernetesNATSConfig(t *testing.T) {
	objs, err := decodeManifests(readManifests(t))
	if err != nil {
		t.Fatal(err)
	}
	m := index(objs)
	conf := m.configMaps["nats-config"].Data["nats.conf"]
	if !strings.Contains(conf, "http: 0.0.0.0:8222") || !strings.Contains(conf, "jetstream {") {
		t.Errorf("nats.conf: want JetStream and monitoring on 0.0.0.0:8222:\n%s", conf)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "nats.conf")
	// The store folder of the pod's volume is the test's.
	if err := os.WriteFile(p, []byte(strings.Replace(conf, "store_dir: /data", "store_dir: "+filepath.Join(dir, "data"), 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), filepath.Join(binaries(t), "nats-server"), "-c", p, "-t")
	cmd.Env = []string{}
	for _, e := range m.statefulSets["nats"].Spec.Template.Spec.Containers[0].Env {
		r := e.ValueFrom.SecretKeyRef
		cmd.Env = append(cmd.Env, e.Name+"="+m.secrets[r.Name].StringData[r.Key])
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("nats-server -t on the ConfigMap's nats.conf: %v\n%s", err, out)
	}
}
