package netns

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fleetcal/fleetcal/internal/testfleet"
)

// The addresses of the topology (see doc.go); the namespaces are private,
// so the subnet cannot clash with the host's.
const (
	subnet     = "10.77.0.%d/24"
	routerAddr = "10.77.0.1"
	natsPort   = "4222"
)

// host is a namespace with one veth into the router's bridge.
type host struct {
	role string // A, B, C
	ns   string
	addr string // its IPv4 address
	port string // its veth's name in the router namespace
}

// fleetNet is the set of namespaces of one test.
type fleetNet struct {
	router string // the router namespace
	hosts  map[string]*host
}

// command runs name args with a deadline and returns an error holding its
// output.
func command(ctx context.Context, name string, args ...string) error {
	out, err := run(ctx, 20*time.Second, name, args...)
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out))
	}
	return nil
}

// in runs a command inside namespace ns.
func in(ctx context.Context, ns string, args ...string) error {
	return command(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...)
}

// newFleetNet creates the router namespace with its bridge and one
// namespace per role, each joined to the bridge by a veth pair. It skips the
// test, with the reason, when the machine does not allow namespaces; t's
// cleanup deletes them all (register it before the processes that run in
// them, so they are killed first).
func newFleetNet(t *testing.T, roles ...string) *fleetNet {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root (ip netns add)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skipf("no ip command (Debian iproute2): %v", err)
	}
	ctx := context.Background() // cleanup must run after t.Context ends
	removeStale(t)
	prefix := fmt.Sprintf("fleetcal-%d-", os.Getpid())
	n := &fleetNet{router: prefix + "R", hosts: map[string]*host{}}
	if err := command(ctx, "ip", "netns", "add", n.router); err != nil {
		t.Skipf("the kernel or container refuses network namespaces: %v", err)
	}
	t.Cleanup(func() {
		for _, h := range n.hosts {
			if err := command(ctx, "ip", "netns", "del", h.ns); err != nil {
				t.Errorf("clean up: %v", err)
			}
		}
		if err := command(ctx, "ip", "netns", "del", n.router); err != nil {
			t.Errorf("clean up: %v", err)
		}
	})
	steps := [][]string{
		{"ip", "-n", n.router, "link", "set", "lo", "up"},
		{"ip", "-n", n.router, "link", "add", "br0", "type", "bridge"},
		{"ip", "-n", n.router, "addr", "add", fmt.Sprintf(subnet, 1), "dev", "br0"},
		{"ip", "-n", n.router, "link", "set", "br0", "up"},
	}
	for i, role := range roles {
		h := &host{role: role, ns: prefix + role, addr: fmt.Sprintf("10.77.0.%d", i+2), port: "p" + role}
		if err := command(ctx, "ip", "netns", "add", h.ns); err != nil {
			t.Fatal(err)
		}
		n.hosts[role] = h
		steps = append(steps,
			[]string{"ip", "-n", h.ns, "link", "set", "lo", "up"},
			[]string{"ip", "link", "add", "eth0", "netns", h.ns, "type", "veth", "peer", "name", h.port, "netns", n.router},
			[]string{"ip", "-n", h.ns, "addr", "add", fmt.Sprintf(subnet, i+2), "dev", "eth0"},
			[]string{"ip", "-n", h.ns, "link", "set", "eth0", "up"},
			[]string{"ip", "-n", n.router, "link", "set", h.port, "master", "br0", "up"},
		)
	}
	for _, s := range steps {
		if err := command(ctx, s[0], s[1:]...); err != nil {
			t.Fatalf("set up the namespaces: %v", err)
		}
	}
	return n
}

// removeStale kills the processes in, and deletes, the namespaces of
// earlier runs of this test whose process is gone (a test binary killed by
// its -timeout runs no cleanup). Namespaces of tests still running are left
// alone.
func removeStale(t *testing.T) {
	names, _ := filepath.Glob("/var/run/netns/fleetcal-*-*")
	for _, path := range names {
		pid, err := strconv.Atoi(strings.Split(filepath.Base(path), "-")[1])
		if err != nil || unix.Kill(pid, 0) != unix.ESRCH {
			continue
		}
		ns := filepath.Base(path)
		pids, _ := run(context.Background(), 20*time.Second, "ip", "netns", "pids", ns)
		for _, p := range strings.Fields(pids) {
			if pid, err := strconv.Atoi(p); err == nil {
				_ = unix.Kill(pid, unix.SIGKILL)
			}
		}
		if err := command(context.Background(), "ip", "netns", "del", ns); err != nil {
			t.Logf("remove a stale namespace: %v", err)
		} else {
			t.Logf("removed %s and its processes %v, left by a test process that is gone", ns, strings.Fields(pids))
		}
	}
}

// inNetns runs f on an OS thread switched into namespace ns: the sockets f
// creates (listeners, dialed connections) live there, whatever thread uses
// them afterwards. The thread is not unlocked, so it exits with f.
func inNetns(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open(filepath.Join("/var/run/netns", ns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("open namespace %s: %w", ns, err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter namespace %s: %w", ns, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// dialer dials from namespace ns.
func dialer(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (c net.Conn, err error) {
		err = inNetns(ns, func() (err error) {
			c, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// get returns the body of a 200 answer to a GET sent from the router
// namespace, which reaches every host.
func (n *fleetNet) get(ctx context.Context, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{DialContext: dialer(n.router), DisableKeepAlives: true}}
	return testfleet.GetWith(ctx, client, url)
}

// metric returns the value of an unlabelled metric at a /metrics URL.
func (n *fleetNet) metric(ctx context.Context, url, name string) (string, error) {
	b, err := n.get(ctx, url)
	if err != nil {
		return "", err
	}
	return testfleet.Metric(b, name)
}
