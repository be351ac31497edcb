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
	"github.com/nats-io/nkeys"
)

// ServerOptions configures an embedded NATS server.
type ServerOptions struct {
	// Listen is the client address, host:port; port -1 picks a free port.
	// Default "127.0.0.1:-1".
	Listen string
	// StoreDir holds JetStream's files; empty uses a temporary folder that
	// Shutdown removes.
	StoreDir string
	// User and Password are the credentials of workers (the worker role,
	// see workerPermissions); empty: generated (Server.WorkerConn).
	User, Password string
	// NKeyFile is a file holding the NKey seed of workers: its public key
	// becomes a worker-role user too.
	NKeyFile string
	// ReadyTimeout bounds how long StartServer waits for the server to
	// accept clients (default 10s).
	ReadyTimeout time.Duration
}

// Roles of the embedded server's users. The server always requires
// credentials, wherever it listens: the coordinator's user (generated,
// known only to the process that starts the server) has every right;
// workers' users may only do what serving shards takes.
const (
	coordinatorUser = "fleetcal-coordinator"
	workerUser      = "fleetcal-worker"
)

// workerPermissions are what a worker may do: pull shards from the work
// queue and acknowledge them, read run specs, models and shipped data,
// create results and store large partials, report progress and hear
// cancellations. It may not publish shards, write run specs, models or
// data, nor create or delete streams and consumers.
func workerPermissions() *server.Permissions {
	kv := func(b string) string { return "KV_" + b }
	obj := func(b string) string { return "OBJ_" + b }
	var pub []string
	for _, st := range []string{StreamName, kv(ResultsBucket), kv(RunsBucket), obj(ModelsBucket), obj(PartialsBucket), obj(DataBucket)} {
		pub = append(pub, "$JS.API.STREAM.INFO."+st)
	}
	for _, st := range []string{kv(RunsBucket), obj(ModelsBucket), obj(DataBucket)} {
		// Reads: direct and stream gets. Results and partial statistics
		// are not read: a worker writes its own (createResult; an object
		// put reads only the object's metadata, below) and reads no one
		// else's, of its run or another.
		pub = append(pub, "$JS.API.DIRECT.GET."+st, "$JS.API.DIRECT.GET."+st+".>", "$JS.API.STREAM.MSG.GET."+st)
	}
	pub = append(pub, "$JS.API.DIRECT.GET."+obj(PartialsBucket)+".$O."+PartialsBucket+".M.>")
	for _, st := range []string{obj(ModelsBucket), obj(DataBucket)} {
		// Object reads go through an ordered consumer of the object's chunks.
		pub = append(pub, "$JS.API.CONSUMER.CREATE."+st, "$JS.API.CONSUMER.CREATE."+st+".>",
			"$JS.API.CONSUMER.DELETE."+st+".>", "$JS.API.CONSUMER.INFO."+st+".>")
	}
	pub = append(pub,
		"$JS.API.CONSUMER.INFO."+StreamName+"."+ConsumerName,
		"$JS.API.CONSUMER.MSG.NEXT."+StreamName+"."+ConsumerName,
		"$JS.ACK."+StreamName+"."+ConsumerName+".>",
		"$JS.FC.>",
		"$KV."+ResultsBucket+".>",
		"$O."+PartialsBucket+".>",
		"$JS.API.STREAM.PURGE."+obj(PartialsBucket),
		EventSubjectPrefix+".>",
	)
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: pub},
		Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>", CancelSubjectPrefix + ".>"}},
	}
}

// Server is an embedded NATS server with JetStream.
type Server struct {
	ns      *server.Server
	tempDir string
	stop    func() bool
	once    sync.Once

	coord, worker ConnOptions
	generated     bool // the worker credentials were generated
}

// CoordinatorConn are the credentials of the coordinator role (every
// right); they never leave the process.
func (s *Server) CoordinatorConn() ConnOptions { return s.coord }

// WorkerConn are the user and password of the worker role: given in
// ServerOptions, or generated (then WorkerConnGenerated is true).
func (s *Server) WorkerConn() ConnOptions { return s.worker }

// WorkerConnGenerated reports whether WorkerConn was generated.
func (s *Server) WorkerConnGenerated() bool { return s.generated }

// nkeyPublic reads an NKey user seed file and returns its public key.
func nkeyPublic(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	kp, err := nkeys.ParseDecoratedNKey(b)
	if err != nil {
		return "", err
	}
	defer kp.Wipe()
	return kp.PublicKey()
}

// StartServer starts an embedded NATS server with JetStream and waits until
// it accepts clients. It always requires credentials: the coordinator's
// (CoordinatorConn) and the workers' (WorkerConn, and the NKey of
// NKeyFile). It stops when ctx ends or on Shutdown, whichever comes first.
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
	if o.User == coordinatorUser {
		return nil, fmt.Errorf("nats server: %w: user %q is reserved", ErrBadSpec, o.User)
	}
	s := &Server{coord: ConnOptions{User: coordinatorUser, Password: NewSecret()}}
	if o.User != "" {
		s.worker = ConnOptions{User: o.User, Password: o.Password}
	} else {
		s.worker = ConnOptions{User: workerUser, Password: NewSecret()}
		s.generated = true
	}
	users := []*server.User{
		{Username: coordinatorUser, Password: s.coord.Password},
		{Username: s.worker.User, Password: s.worker.Password, Permissions: workerPermissions()},
	}
	var nkeyUsers []*server.NkeyUser
	if o.NKeyFile != "" {
		pub, err := nkeyPublic(o.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("nats server: %w: nkey %s: %v", ErrBadSpec, o.NKeyFile, err)
		}
		nkeyUsers = append(nkeyUsers, &server.NkeyUser{Nkey: pub, Permissions: workerPermissions()})
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
	dir := o.StoreDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "fleetcal-nats-"); err != nil {
			return nil, fmt.Errorf("nats server: store dir: %w", err)
		}
		s.tempDir = dir
	}
	ns, err := server.NewServer(&server.Options{
		ServerName: "fleetcal",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		Users:      users,
		Nkeys:      nkeyUsers,
		NoLog:      true,
		NoSigs:     true,
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
