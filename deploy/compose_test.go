package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// composeProject loads compose/compose.yaml (its text passed through mutate
// when given) with compose-go, the loader of docker compose, schema
// validation on, every profile enabled and paths resolved.
func composeProject(t *testing.T, mutate func(string) string) (*types.Project, error) {
	t.Helper()
	b, err := os.ReadFile("compose/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	if mutate != nil {
		text = mutate(text)
	}
	dir, err := filepath.Abs("compose")
	if err != nil {
		t.Fatal(err)
	}
	return loader.LoadWithContext(t.Context(), types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, "compose.yaml"), Content: []byte(text)}},
		Environment: types.Mapping{},
	}, loader.WithProfiles([]string{"job"}), func(o *loader.Options) {
		o.ResolvePaths = true
		o.SetProjectName("fleetcal", true)
	})
}

// loadCompose is composeProject for a file that must load.
func loadCompose(t *testing.T, mutate func(string) string) *types.Project {
	t.Helper()
	p, err := composeProject(t, mutate)
	if err != nil {
		t.Fatalf("compose/compose.yaml: %v", err)
	}
	return p
}

func TestComposeFile(t *testing.T) {
	p := loadCompose(t, nil)
	for _, name := range []string{"nats", "worker", "coordinator", "prometheus", "grafana"} {
		if _, ok := p.Services[name]; !ok {
			t.Errorf("compose/compose.yaml has no service %s", name)
		}
	}
	nats := p.Services["nats"]
	if !slicesContain(nats.Command, "--jetstream") || !hasVolume(nats, "nats-data", "/data") {
		t.Errorf("nats: want --jetstream and the volume nats-data on its store /data: command %q volumes %+v", nats.Command, nats.Volumes)
	}
	w := p.Services["worker"]
	if w.Deploy == nil || w.Deploy.Replicas == nil || *w.Deploy.Replicas < 2 {
		t.Errorf("worker: want deploy.replicas of at least 2, got %+v", w.Deploy)
	}
	if w.Build == nil || w.Build.Dockerfile != "deploy/container/Dockerfile" {
		t.Errorf("worker: want a build of deploy/container/Dockerfile, got %+v", w.Build)
	} else if _, err := os.Stat(filepath.Join(w.Build.Context, w.Build.Dockerfile)); err != nil {
		t.Errorf("worker build: %v", err)
	}
	c := p.Services["coordinator"]
	if !slicesContain(c.Profiles, "job") || len(c.Entrypoint) != 1 || c.Entrypoint[0] != "coordinator" {
		t.Errorf("coordinator: want the one-shot profile job and entrypoint coordinator, got %q %q", c.Profiles, c.Entrypoint)
	}
	// Both sides log in with the same credentials, the NATS server's.
	conf, err := os.ReadFile("systemd/nats-server.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []types.ServiceConfig{w, c} {
		if !strings.Contains(strings.Join(s.Command, " "), "--user fleet --password CHANGE-ME") ||
			!strings.Contains(string(conf), "{user: fleet, password: CHANGE-ME}") {
			t.Errorf("%s: command %q does not log in as systemd/nats-server.conf's user", s.Name, s.Command)
		}
	}
	// Every file the compose file mounts exists.
	for _, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind {
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("service %s mounts %s: %v", s.Name, v.Source, err)
				}
			}
		}
	}
	for name, cf := range p.Configs {
		if _, err := os.Stat(cf.File); err != nil {
			t.Errorf("config %s: %v", name, err)
		}
	}
}

// TestComposeFileTypos checks that the schema validation is on: misspelled
// keys and a wrong type fail to load, with the key named.
func TestComposeFileTypos(t *testing.T) {
	for _, tc := range []struct{ from, to, want string }{
		{"      replicas: 3", "      replica: 3", "replica"},
		{"    restart: unless-stopped", "    restrat: unless-stopped", "restrat"},
		{"    profiles: [\"job\"]", "    profile: [\"job\"]", "profile"},
		{"      replicas: 3", "      replicas: three", "replicas"},
	} {
		t.Run(tc.to, func(t *testing.T) {
			_, err := composeProject(t, func(s string) string {
				if !strings.Contains(s, tc.from) {
					t.Fatalf("compose/compose.yaml has no %q to mutate", tc.from)
				}
				return strings.Replace(s, tc.from, tc.to, 1)
			})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("compose file with %q: error %v, want one naming %q", tc.to, err, tc.want)
			}
		})
	}
}

func slicesContain(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func hasVolume(s types.ServiceConfig, source, target string) bool {
	for _, v := range s.Volumes {
		if v.Source == source && v.Target == target {
			return true
		}
	}
	return false
}
