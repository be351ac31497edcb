package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ServerOptions configures an embedded NATS server.
type ServerOptions struct {
	// Listen is the client address, host:port; port -1 picks a free port.
	// Default "127.0.0.1:-1". A host that is not loopback (including an
	// empty host, meaning every interface) requires User and Password or
	// Token.
	Listen string
	// StoreDir holds JetStream's files; empty uses a temporary folder that
	// Shutdown removes.
	StoreDir string
	// User and Password, or Token, are the credentials clients must give.
	User, Password string
	Token          string
	// ReadyTimeout bounds how long StartServer waits for the server to
	// accept clients (default 10s).
	ReadyTimeout time.Duration
}

// Server is an embedded NATS server with JetStream.
type Server struct {
	ns      *server.Server
	tempDir string
	stop    func() bool
	once    sync.Once
}

// isLoopback reports whether host only accepts connections from this machine.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// StartServer starts an embedded NATS server with JetStream and waits until
// it accepts clients. It stops when ctx ends or on Shutdown, whichever
// comes first.
func StartServer(ctx context.Context, o ServerOptions) (*Server, error) {
	if o.Listen == "" {
		o.Listen = "127.0.0.1:-1"
	}
	host, portStr, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return nil, fmt.Errorf("nats server: listen address %q: %w", o.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < -1 || port > 65535 {
		return nil, fmt.Errorf("nats server: listen address %q: bad port %q", o.Listen, portStr)
	}
	if (o.User == "") != (o.Password == "") {
		return nil, fmt.Errorf("nats server: %w: set both user and password", ErrBadSpec)
	}
	if o.User != "" && o.Token != "" {
		return nil, fmt.Errorf("nats server: %w: user/password and token are exclusive", ErrBadSpec)
	}
	if !isLoopback(host) && o.User == "" && o.Token == "" {
		return nil, fmt.Errorf("nats server: listen %s: %w (set a user and password, or a token)", o.Listen, ErrInsecureListen)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if port > 0 { // the server only logs a busy port, then never gets ready
		ln, err := net.Listen("tcp", net.JoinHostPort(host, portStr))
		if err != nil {
			return nil, listenError("nats server", o.Listen, err)
		}
		ln.Close()
	}
	s := &Server{}
	dir := o.StoreDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "fleetcal-nats-"); err != nil {
			return nil, fmt.Errorf("nats server: store dir: %w", err)
		}
		s.tempDir = dir
	}
	ns, err := server.NewServer(&server.Options{
		ServerName:    "fleetcal",
		Host:          host,
		Port:          port,
		JetStream:     true,
		StoreDir:      dir,
		Username:      o.User,
		Password:      o.Password,
		Authorization: o.Token,
		NoLog:         true,
		NoSigs:        true,
	})
	if err != nil {
		s.removeTemp()
		return nil, fmt.Errorf("nats server: %w", err)
	}
	s.ns = ns
	ns.Start()
	wait := o.ReadyTimeout
	if wait <= 0 {
		wait = 10 * time.Second
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
		wait = time.Until(dl)
	}
	if !ns.ReadyForConnections(wait) {
		s.Shutdown()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("nats server: not ready on %s after %s", o.Listen, wait)
	}
	if !ns.JetStreamEnabled() {
		s.Shutdown()
		return nil, errors.New("nats server: JetStream did not start")
	}
	s.stop = context.AfterFunc(ctx, s.Shutdown)
	return s, nil
}

// ClientURL is the URL clients connect to, e.g. "nats://127.0.0.1:4222".
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// Shutdown stops the server, waits for it and removes its temporary store.
// It is safe to call more than once.
func (s *Server) Shutdown() {
	s.once.Do(func() {
		if s.stop != nil {
			s.stop()
		}
		if s.ns != nil {
			s.ns.Shutdown()
			s.ns.WaitForShutdown()
		}
		s.removeTemp()
	})
}

func (s *Server) removeTemp() {
	if s.tempDir != "" {
		_ = os.RemoveAll(s.tempDir)
	}
}
