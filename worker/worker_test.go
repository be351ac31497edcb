package worker

import (
	"bytes"
	"strings"
	"testing"
)

// Bad command lines end in one line naming the binary, exit code 1.
func TestRunErrors(t *testing.T) {
	t.Setenv("FLEETCAL_SECRET", "")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"", []string{}, "worker: invalid configuration: --nats URL is required\n"},
		{"mycal-worker", []string{"--nats", "nats://127.0.0.1:1", "--concurrency", "0"}, "mycal-worker: invalid configuration: --concurrency 0: want at least 1\n"},
		{"mycal-worker", []string{"--nats", "nats://127.0.0.1:1"}, "mycal-worker: invalid configuration: the fleet secret is required"},
		{"", []string{"--bogus"}, "worker: unknown flag: --bogus\n"},
	} {
		var out, errb bytes.Buffer
		code := Run(t.Context(), tc.args, &out, &errb, Options{Name: tc.name})
		if code != 1 || !strings.HasPrefix(errb.String(), tc.want) || strings.Count(errb.String(), "\n") != 1 {
			t.Errorf("Run(%q) = %d, stderr %q; want 1 and %q", tc.args, code, errb.String(), tc.want)
		}
	}
	var out bytes.Buffer
	if code := Run(t.Context(), []string{"--help"}, &out, &out, Options{Name: "mycal-worker"}); code != 0 || !strings.Contains(out.String(), "mycal-worker --nats URL") {
		t.Errorf("--help: %d, %q", code, out.String())
	}
}
