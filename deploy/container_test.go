package deploy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

// dockerStage is one FROM ... AS ... stage of a Dockerfile and its
// instructions (continuation lines joined).
type dockerStage struct {
	image, name string
	lines       []string // "INSTRUCTION args"
}

func parseDockerfile(text string) []dockerStage {
	var stages []dockerStage
	joined := strings.ReplaceAll(text, "\\\n", " ")
	for _, line := range strings.Split(joined, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		if strings.EqualFold(f[0], "FROM") {
			st := dockerStage{image: f[1]}
			if len(f) == 4 && strings.EqualFold(f[2], "AS") {
				st.name = f[3]
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) > 0 {
			stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, strings.ToUpper(f[0])+" "+strings.Join(f[1:], " "))
		}
	}
	return stages
}

// shellVar returns the value of NAME=value in a shell script, or of
// ARG NAME=value in a Dockerfile stage.
func shellVar(text, name string) string {
	m := regexp.MustCompile(`(?m)^(?:ARG )?` + name + `=(\S+)$`).FindStringSubmatch(text)
	if m == nil {
		return ""
	}
	return m[1]
}

// ortPackagePath is where onnxruntime-node keeps the Linux x86-64 library.
var ortPackagePath = regexp.MustCompile(`package/bin/napi-v6/linux/x64/libonnxruntime\.so\.1`)

// checkDockerfile returns what is wrong with the container build: ONNX
// Runtime not the package and SHA-256 of scripts/setup.sh, not verified,
// no Go build stage, not a Debian slim runtime, running as root, or the
// library not where ONNXRUNTIME_LIB says.
func checkDockerfile(dockerfile, setup, goMod string) []error {
	var errs []error
	for _, name := range []string{"ORT_NPM_VERSION", "ORT_SO_SHA256"} {
		want, got := shellVar(setup, name), shellVar(dockerfile, name)
		if want == "" || got != want {
			errs = append(errs, fmt.Errorf("Dockerfile ARG %s=%q, scripts/setup.sh has %q", name, got, want))
		}
	}
	if !ortPackagePath.MatchString(setup) || !ortPackagePath.MatchString(dockerfile) {
		errs = append(errs, fmt.Errorf("the library's path in the npm package (%s) differs between scripts/setup.sh and the Dockerfile", ortPackagePath))
	}
	if !strings.Contains(dockerfile, `npm pack --silent "onnxruntime-node@${ORT_NPM_VERSION}"`) ||
		!strings.Contains(dockerfile, `echo "${ORT_SO_SHA256}  package/bin/napi-v6/linux/x64/libonnxruntime.so.1" | sha256sum -c -`) {
		errs = append(errs, fmt.Errorf("the Dockerfile does not fetch onnxruntime-node@${ORT_NPM_VERSION} and check it with sha256sum -c"))
	}
	stages := parseDockerfile(dockerfile)
	if len(stages) < 2 {
		return append(errs, fmt.Errorf("Dockerfile: %d stages, want a multi-stage build", len(stages)))
	}
	names := map[string]bool{}
	for _, st := range stages[:len(stages)-1] {
		names[st.name] = true
	}
	goImage := regexp.MustCompile(`^golang:(\d+\.\d+)(?:\.\d+)?-`).FindStringSubmatch(stages[0].image)
	goLine := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(goMod)
	if goImage == nil || goLine == nil || goImage[1] != goLine[1] {
		errs = append(errs, fmt.Errorf("Dockerfile build stage %s: want golang:<go.mod's go %v>-...", stages[0].image, goLine))
	}
	final := stages[len(stages)-1]
	if !regexp.MustCompile(`^debian:[a-z]+-slim$`).MatchString(final.image) {
		errs = append(errs, fmt.Errorf("Dockerfile runtime stage %s: want debian:<release>-slim", final.image))
	}
	var user, lib, libDest string
	for _, l := range final.lines {
		f := strings.Fields(l)
		switch f[0] {
		case "USER":
			user = f[1]
		case "ENV":
			if m := regexp.MustCompile(`ONNXRUNTIME_LIB=(\S+)`).FindStringSubmatch(l); m != nil {
				lib = m[1]
			}
		case "COPY":
			if strings.HasPrefix(f[1], "--from=") && !names[strings.TrimPrefix(f[1], "--from=")] {
				errs = append(errs, fmt.Errorf("Dockerfile: %s copies from no earlier stage", l))
			}
			if strings.HasSuffix(f[len(f)-2], "libonnxruntime.so.1") {
				libDest = f[len(f)-1]
			}
		}
	}
	if uid, _, _ := strings.Cut(user, ":"); uid == "" || uid == "0" || uid == "root" {
		errs = append(errs, fmt.Errorf("Dockerfile: the runtime stage runs as %q, want a non-root USER", user))
	}
	if lib == "" || lib != libDest {
		errs = append(errs, fmt.Errorf("Dockerfile: ENV ONNXRUNTIME_LIB=%s but the library is copied to %s", lib, libDest))
	}
	return errs
}

func TestDockerfile(t *testing.T) {
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	dockerfile, setup, goMod := read("container/Dockerfile"), read("../scripts/setup.sh"), read("../go.mod")
	for _, err := range checkDockerfile(dockerfile, setup, goMod) {
		t.Error(err)
	}
	// The library setup.sh installed has the SHA-256 the image build checks.
	if b, err := os.ReadFile("../.deps/onnxruntime/libonnxruntime.so.1"); err == nil {
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); got != shellVar(dockerfile, "ORT_SO_SHA256") {
			t.Errorf(".deps/onnxruntime/libonnxruntime.so.1 has SHA-256 %s, the Dockerfile wants %s", got, shellVar(dockerfile, "ORT_SO_SHA256"))
		}
	} else {
		t.Logf("no .deps/onnxruntime/libonnxruntime.so.1 to compare (%v)", err)
	}

	for _, tc := range []struct{ name, from, to, want string }{
		{"other sha", "ARG ORT_SO_SHA256=ffb7", "ARG ORT_SO_SHA256=0fb7", "ORT_SO_SHA256"},
		{"other version", "ARG ORT_NPM_VERSION=1.30.0", "ARG ORT_NPM_VERSION=1.29.0", "ORT_NPM_VERSION"},
		{"root", "USER 10001:10001", "USER root", "non-root"},
		{"unchecked", "| sha256sum -c -", "| cat", "sha256sum -c"},
		{"lib elsewhere", "ONNXRUNTIME_LIB=/usr/local/lib/fleetcal/", "ONNXRUNTIME_LIB=/usr/lib/", "ONNXRUNTIME_LIB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(dockerfile, tc.from) {
				t.Fatalf("container/Dockerfile has no %q to mutate", tc.from)
			}
			errs := checkDockerfile(strings.Replace(dockerfile, tc.from, tc.to, 1), setup, goMod)
			if !strings.Contains(fmt.Sprint(errs), tc.want) {
				t.Errorf("Dockerfile with %q: errors %v, want one about %s", tc.to, errs, tc.want)
			}
		})
	}
}
