package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

func TestStartServerListen(t *testing.T) {
	tests := []struct {
		o    ServerOptions
		want error
	}{
		{ServerOptions{Listen: "0.0.0.0:-1"}, ErrInsecureListen},
		{ServerOptions{Listen: ":4222"}, ErrInsecureListen},
		{ServerOptions{Listen: "127.0.0.1:-1", User: "u"}, ErrBadSpec},
		{ServerOptions{Listen: "127.0.0.1:-1", User: "u", Password: "p", Token: "t"}, ErrBadSpec},
	}
	for _, tc := range tests {
		t.Run(tc.o.Listen, func(t *testing.T) {
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
	tok := startServer(t, ServerOptions{Token: "tok3n"})
	tests := []struct {
		name string
		url  string
		o    ConnOptions
		want error
	}{
		{"user ok", pw.ClientURL(), ConnOptions{User: "fleet", Password: "s3cret"}, nil},
		{"wrong password", pw.ClientURL(), ConnOptions{User: "fleet", Password: "guess"}, ErrAuth},
		{"no credentials", pw.ClientURL(), ConnOptions{}, ErrAuth},
		{"token ok", tok.ClientURL(), ConnOptions{Token: "tok3n"}, nil},
		{"wrong token", tok.ClientURL(), ConnOptions{Token: "guess"}, ErrAuth},
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
