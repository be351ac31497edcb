package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
)

func TestStartServerListen(t *testing.T) {
	tests := []struct {
		o    ServerOptions
		want error
	}{
		{ServerOptions{Listen: "127.0.0.1:-1", User: "u"}, ErrBadSpec},
		{ServerOptions{Listen: "127.0.0.1:-1", User: coordinatorUser, Password: "p"}, ErrBadSpec},
		{ServerOptions{Listen: "127.0.0.1:-1", NKeyFile: "/nonexistent.nk"}, ErrBadSpec},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.o), func(t *testing.T) {
			tc.o.StoreDir = t.TempDir()
			s, err := StartServer(t.Context(), tc.o)
			if !errors.Is(err, tc.want) {
				if s != nil {
					s.Shutdown()
				}
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := StartServer(t.Context(), ServerOptions{Listen: "127.0.0.1"}); err == nil || !strings.Contains(err.Error(), `listen address "127.0.0.1"`) {
		t.Errorf("no port: got %v", err)
	}
}

// TestServerStopsWithContext: the embedded server shuts down when its
// context ends, and removes its temporary store.
func TestServerStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	s, err := StartServer(ctx, ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	if !strings.HasPrefix(s.ClientURL(), "nats://127.0.0.1:") {
		t.Errorf("client URL %s", s.ClientURL())
	}
	cancel()
	checkFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		c, err := net.Dial("tcp", strings.TrimPrefix(s.ClientURL(), "nats://"))
		if err == nil {
			c.Close()
			return errors.New("still accepting connections")
		}
		return nil
	})
}

// TestConnect: an unreachable URL fails within seconds naming the URL;
// credentials are checked.
func TestConnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("nats://127.0.0.1:%d", ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	start := time.Now()
	_, err = Connect(t.Context(), url, ConnOptions{})
	if !errors.Is(err, ErrConnect) || !strings.Contains(err.Error(), url) {
		t.Errorf("unreachable: got %v, want ErrConnect naming %s", err, url)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("unreachable: took %s", took)
	}

	pw := startServer(t, ServerOptions{User: "fleet", Password: "s3cret"})
	seed := writeNKey(t)
	nk := startServer(t, ServerOptions{Listen: "0.0.0.0:-1", NKeyFile: seed})
	gen := startServer(t, ServerOptions{})
	tests := []struct {
		name string
		url  string
		o    ConnOptions
		want error
	}{
		{"user ok", pw.ClientURL(), ConnOptions{User: "fleet", Password: "s3cret"}, nil},
		{"wrong password", pw.ClientURL(), ConnOptions{User: "fleet", Password: "guess"}, ErrAuth},
		{"no credentials", pw.ClientURL(), ConnOptions{}, ErrAuth},
		{"nkey ok", nk.ClientURL(), ConnOptions{NKeyFile: seed}, nil},
		{"another nkey", nk.ClientURL(), ConnOptions{NKeyFile: writeNKey(t)}, ErrAuth},
		{"listening everywhere, no credentials", nk.ClientURL(), ConnOptions{}, ErrAuth},
		{"generated worker credentials", gen.ClientURL(), gen.WorkerConn(), nil},
		{"generated, no credentials", gen.ClientURL(), ConnOptions{}, ErrAuth},
		{"token", gen.ClientURL(), ConnOptions{Token: "guess"}, ErrAuth},
		{"password in URL is redacted", strings.Replace(pw.ClientURL(), "nats://", "nats://fleet:guess@", 1), ConnOptions{}, ErrAuth},
		{"exclusive", pw.ClientURL(), ConnOptions{Token: "a", NKeyFile: "b"}, ErrBadSpec},
		{"missing creds file", pw.ClientURL(), ConnOptions{CredsFile: "/nonexistent.creds"}, ErrConnect},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := Connect(t.Context(), tc.url, tc.o)
			if nc != nil {
				nc.Close()
			}
			if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "guess") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

// writeNKey writes a new NKey user seed to a file and returns its path.
func writeNKey(t *testing.T) string {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "worker.nk")
	if err := os.WriteFile(p, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
