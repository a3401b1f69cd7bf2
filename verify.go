package main

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"time"
)

const (
	// maxVerifying bounds the connect-back checks that announces run at once.
	maxVerifying = 64
	// perSource bounds the checks that one address on another host can have
	// running, so that one host cannot take every slot.
	perSource = 4
	// maxFailed bounds the addresses whose failed check is remembered.
	maxFailed = 4096
)

// errBusy refuses an announce while its source has perSource checks running.
var errBusy = errors.New("too many announces from your address are being checked; try again later")

// verifier runs the connect-back checks of announces, fairly: announces of
// one address share one check, an address whose check failed is refused for
// a cool-down without a new one, and one source on another host has at most
// perSource checks running.
type verifier struct {
	check    func(context.Context, Node) error
	cooldown time.Duration    // -t: no address is checked more often than a hung check would allow
	now      func() time.Time // time.Now; the simulation's clock moves a round at a time
	slots    chan struct{}    // maxVerifying in all

	mu      sync.Mutex
	running map[Node]*pendingCheck
	failed  map[Node]failedCheck
	sources map[netip.Addr]int // checks running, by the address that asked
}

// pendingCheck is one check under way; done is closed when err is set.
type pendingCheck struct {
	done      chan struct{}
	err       error
	cancelled bool // its caller went away: the result says nothing about the node
}

// failedCheck is a recent failure, given again during the cool-down.
type failedCheck struct {
	at  time.Time
	err error
}

// newVerifier returns a verifier that runs check, and refuses an address
// whose check failed for cooldown.
func newVerifier(check func(context.Context, Node) error, cooldown time.Duration) *verifier {
	return &verifier{
		check:    check,
		cooldown: cooldown,
		now:      time.Now,
		slots:    make(chan struct{}, maxVerifying),
		running:  map[Node]*pendingCheck{},
		failed:   map[Node]failedCheck{},
		sources:  map[netip.Addr]int{},
	}
}

// verify checks that n answers, on behalf of a caller at src; trusted
// callers (this host) have no per-source bound.
func (v *verifier) verify(ctx context.Context, src netip.Addr, trusted bool, n Node) error {
	for {
		v.mu.Lock()
		if f, ok := v.failed[n]; ok && v.now().Sub(f.at) < v.cooldown {
			v.mu.Unlock()
			return f.err
		}
		if p := v.running[n]; p != nil {
			v.mu.Unlock()
			select {
			case <-p.done:
			case <-ctx.Done():
				return ctx.Err()
			}
			if p.cancelled {
				continue // its caller left before the answer: check again
			}
			return p.err
		}
		if !trusted && v.sources[src] >= perSource {
			v.mu.Unlock()
			return errBusy
		}
		p := &pendingCheck{done: make(chan struct{})}
		v.running[n] = p
		v.sources[src]++
		v.mu.Unlock()

		select {
		case v.slots <- struct{}{}:
			p.err = v.check(ctx, n)
			<-v.slots
		case <-ctx.Done():
			p.err = ctx.Err()
		}
		p.cancelled = ctx.Err() != nil

		v.mu.Lock()
		delete(v.running, n)
		if v.sources[src]--; v.sources[src] == 0 {
			delete(v.sources, src)
		}
		if p.err != nil && !p.cancelled {
			v.remember(n, p.err)
		}
		v.mu.Unlock()
		close(p.done)
		return p.err
	}
}

// remember records a failed check, keeping at most maxFailed: when full it
// forgets the expired ones, and records nothing if none has expired.
func (v *verifier) remember(n Node, err error) {
	if len(v.failed) >= maxFailed {
		for m, f := range v.failed {
			if v.now().Sub(f.at) >= v.cooldown {
				delete(v.failed, m)
			}
		}
	}
	if len(v.failed) < maxFailed {
		v.failed[n] = failedCheck{at: v.now(), err: err}
	}
}
