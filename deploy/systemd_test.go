package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The binaries the units' ExecStart name where the install notes put them.
var unitBinaries = map[string]struct{ installed, built string }{
	"fleetcal-worker.service": {"/usr/local/bin/fleetcal-worker", "worker"},
	"nats-server.service":     {"/usr/local/bin/nats-server", "nats-server"},
}

// verifyUnits copies the units into a folder with ExecStart pointing at the
// real binaries just built (systemd-analyze verify wants them to exist),
// applies mutate to the copies' text, and runs `systemd-analyze verify`. It
// returns what verify printed: it reports an unknown key or a bad value on
// stderr and still exits 0, so any output is a problem.
func verifyUnits(t *testing.T, mutate func(name, text string) string) (string, error) {
	t.Helper()
	bin := binaries(t)
	dir := t.TempDir()
	var paths []string
	for name, b := range unitBinaries {
		text, err := os.ReadFile(filepath.Join("systemd", name))
		if err != nil {
			t.Fatal(err)
		}
		s := string(text)
		if strings.Count(s, "ExecStart="+b.installed+" ") != 1 {
			t.Fatalf("systemd/%s: want one ExecStart=%s", name, b.installed)
		}
		s = strings.Replace(s, "ExecStart="+b.installed+" ", "ExecStart="+filepath.Join(bin, b.built)+" ", 1)
		if mutate != nil {
			s = mutate(name, s)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze not found (Debian package systemd): %v", err)
	}
	out, err := exec.CommandContext(t.Context(), analyze, append([]string{"verify", "--man=no", "--generators=no"}, paths...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func TestSystemdVerify(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(name, text string) string
		want   string // a regexp of verify's complaint; "" for none
	}{
		{name: "shipped"},
		{name: "misspelled key", want: `fleetcal-worker.service:\d+: Unknown key 'Restrt' in section \[Service\]`,
			mutate: func(name, s string) string {
				if name != "fleetcal-worker.service" {
					return s
				}
				return strings.Replace(s, "\nRestart=", "\nRestrt=", 1)
			}},
		{name: "bad value", want: `nats-server.service:\d+: Failed to parse protect system value.*: strikt`,
			mutate: func(name, s string) string {
				if name != "nats-server.service" {
					return s
				}
				return strings.Replace(s, "ProtectSystem=strict", "ProtectSystem=strikt", 1)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := verifyUnits(t, tc.mutate)
			if tc.want == "" {
				if err != nil || out != "" {
					t.Errorf("systemd-analyze verify: %v\n%s", err, out)
				}
				return
			}
			if !regexp.MustCompile(tc.want).MatchString(out) {
				t.Errorf("systemd-analyze verify of a copy with a %s printed %q (err %v), want a line matching %q", tc.name, out, err, tc.want)
			}
		})
	}
}

// TestSystemdHardening checks the sandbox directives the units promise and
// systemd's own exposure score of them.
func TestSystemdHardening(t *testing.T) {
	required := []string{
		"DynamicUser=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "PrivateDevices=yes",
		"NoNewPrivileges=yes", "CapabilityBoundingSet=", "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
		"SystemCallFilter=@system-service", "SystemCallArchitectures=native", "MemoryDenyWriteExecute=yes",
		"Restart=on-failure",
	}
	perUnit := map[string][]string{
		"fleetcal-worker.service": {"EnvironmentFile=/etc/fleetcal/worker.env", "CacheDirectory=fleetcal-worker", "Environment=TMPDIR=%C/fleetcal-worker"},
		"nats-server.service":     {"StateDirectory=nats"},
	}
	var paths []string
	for name, extra := range perUnit {
		p := filepath.Join("systemd", name)
		paths = append(paths, p)
		u, err := readUnit(p)
		if err != nil {
			t.Fatal(err)
		}
		have := map[string]bool{}
		for _, kv := range u["Service"] {
			have[kv[0]+"="+kv[1]] = true
		}
		for _, d := range append(required, extra...) {
			if !have[d] {
				t.Errorf("%s: [Service] lacks %s", p, d)
			}
		}
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze not found (Debian package systemd): %v", err)
	}
	// --threshold is ten times the printed exposure level: 20 is "2.0 OK"
	// on systemd's 0 (safe) to 10 (exposed) scale.
	out, err := exec.CommandContext(t.Context(), analyze, append([]string{"security", "--offline=true", "--threshold=20", "--no-pager"}, paths...)...).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze security: exposure above 2.0 or an error: %v\n%s", err, out)
	}
	if levels := regexp.MustCompile(`Overall exposure level for \S+: [0-9.]+`).FindAllString(string(out), -1); len(levels) != 2 {
		t.Errorf("systemd-analyze security printed %d exposure levels, want 2:\n%s", len(levels), out)
	} else {
		t.Log(strings.Join(levels, "; "))
	}
}

// TestWorkerUnitCommand runs the units' commands as systemd would start
// them, without systemd (runFleet), and checks the worker's probe endpoint.
func TestWorkerUnitCommand(t *testing.T) {
	fs := sharedFleet(t)
	if string(fs.health) != "ok\n" {
		t.Errorf("worker /healthz answered %q, want \"ok\\n\"", fs.health)
	}
	t.Logf("worker under memory-deny-write-execute: %v", fs.mdwe)
}

// TestSystemdRun starts the worker as a transient unit with the unit file's
// [Service] sandbox where a systemd manager accepts one (as root the
// system's, else the user's), and checks its /healthz. On machines without a
// running systemd (containers, CI sandboxes) it skips with systemd-run's
// own words.
func TestSystemdRun(t *testing.T) {
	sdrun, err := exec.LookPath("systemd-run")
	if err != nil {
		t.Skipf("systemd-run not installed: %v", err)
	}
	var scope []string
	if os.Geteuid() != 0 {
		scope = []string{"--user"}
	}
	probe := append(append([]string{}, scope...), "--quiet", "--wait", "--collect", "true")
	if out, err := exec.CommandContext(t.Context(), sdrun, probe...).CombinedOutput(); err != nil {
		t.Skipf("systemd-run %s cannot start a unit on this machine: %v: %s", strings.Join(probe, " "), err, strings.TrimSpace(string(out)))
	}
	bin := binaries(t)
	u, err := readUnit("systemd/fleetcal-worker.service")
	if err != nil {
		t.Fatal(err)
	}
	natsAddr := freeAddr(t)
	ns := start(t, "nats-server", exec.CommandContext(t.Context(), filepath.Join(bin, "nats-server"),
		"-js", "-sd", t.TempDir(), "-a", "127.0.0.1", "-p", strings.Split(natsAddr, ":")[1]))
	metrics := freeAddr(t)
	name := fmt.Sprintf("fleetcal-worker-test-%d", os.Getpid())
	args := append(append([]string{}, scope...), "--quiet", "--collect", "--unit", name)
	for _, kv := range u["Service"] {
		switch kv[0] {
		case "ExecStart", "EnvironmentFile", "Type", "Environment":
		default:
			args = append(args, "-p", kv[0]+"="+kv[1])
		}
	}
	// The unit's Environment=TMPDIR=%C/fleetcal-worker, expanded (transient
	// units get no specifiers); the built binary and the library are made
	// visible to the dynamic user through the private /tmp.
	args = append(args, "-p", "Environment=TMPDIR=/var/cache/fleetcal-worker")
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	args = append(args, "-p", "BindReadOnlyPaths="+bin)
	lib := os.Getenv("ONNXRUNTIME_LIB")
	if lib == "" {
		lib, _ = filepath.Abs("../.deps/onnxruntime/libonnxruntime.so.1")
	}
	args = append(args, "-p", "Environment=ONNXRUNTIME_LIB="+lib, "-p", "BindReadOnlyPaths="+lib)
	args = append(args, filepath.Join(bin, "worker"), "--nats", "nats://"+natsAddr, "--metrics-addr", metrics)
	if out, err := exec.CommandContext(t.Context(), sdrun, args...).CombinedOutput(); err != nil {
		t.Fatalf("systemd-run %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	systemctl := append(append([]string{}, scope...), "stop", name)
	defer exec.Command("systemctl", systemctl...).Run()
	waitFor(t, time.Minute, "worker /healthz under systemd", nil, func() error {
		_, err := httpGet(t.Context(), "http://"+metrics+"/healthz")
		return err
	})
	if out, err := exec.CommandContext(t.Context(), "systemctl", systemctl...).CombinedOutput(); err != nil {
		t.Errorf("systemctl %s: %v\n%s", strings.Join(systemctl, " "), err, out)
	}
	if err := stop(ns); err != nil {
		t.Errorf("nats-server: %v", err)
	}
}
