package netns

import (
	"context"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// relay stands in for tc netem where the kernel lacks it: it forwards the
// TCP connections it accepts to target and delays every chunk read, in each
// direction, by delay ± jitter (uniform), keeping the order of the bytes, as
// a slow link does. What it does not emulate: packet loss (TCP hides it
// from both ends; the test drops packets with iptables instead),
// reordering, and delays smaller than one read. Its random numbers come
// from fixed seeds.
type relay struct {
	ln            net.Listener
	target        string
	dial          func(ctx context.Context, network, addr string) (net.Conn, error)
	delay, jitter atomic.Int64  // time.Duration, set while it runs
	conns         atomic.Uint64 // connections accepted
	chunks        atomic.Uint64 // chunks delayed by more than 0
	wg            sync.WaitGroup
}

// serve accepts until the listener is closed, then closes the connections
// it opened and returns when they are done.
func (r *relay) serve(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer func() { cancel(); r.wg.Wait() }()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		n := r.conns.Add(1)
		r.wg.Go(func() { r.forward(ctx, c, n) })
	}
}

// forward copies both ways between c and a new connection to target until
// either side ends or ctx does, then closes both.
func (r *relay) forward(ctx context.Context, c net.Conn, n uint64) {
	defer c.Close()
	u, err := r.dial(ctx, "tcp", r.target)
	if err != nil {
		return
	}
	defer u.Close()
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { r.pipe(ctx, u, c, rand.New(rand.NewPCG(n, 1))); cancel() })
	wg.Go(func() { r.pipe(ctx, c, u, rand.New(rand.NewPCG(n, 2))); cancel() })
	<-ctx.Done()
	c.Close() // unblock the reads of both pipes
	u.Close()
	wg.Wait()
}

// pipe writes what src sends to dst, each chunk no earlier than its arrival
// plus delay ± jitter and no earlier than the chunk before it.
func (r *relay) pipe(ctx context.Context, dst, src net.Conn, rng *rand.Rand) {
	type chunk struct {
		b  []byte
		at time.Time
	}
	chunks := make(chan chunk, 256)
	go func() {
		defer close(chunks)
		var last time.Time
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				d, j := time.Duration(r.delay.Load()), r.jitter.Load()
				if j > 0 {
					d += time.Duration(rng.Int64N(2*j+1) - j)
				}
				at := time.Now().Add(d)
				if at.Before(last) {
					at = last
				}
				last = at
				if d > 0 {
					r.chunks.Add(1)
				}
				select {
				case chunks <- chunk{buf[:n], at}:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range chunks {
		select {
		case <-time.After(time.Until(c.at)):
		case <-ctx.Done():
			return
		}
		if _, err := dst.Write(c.b); err != nil {
			return
		}
	}
}
