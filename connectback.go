package main

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"time"
)

// verifier runs the connect-back checks of announces, fairly: announces of
// one address share one check, a failed check is given again for a
// cool-down, callers of one group on another host have at most perGroup
// checks under way, and a free slot goes to the waiting check whose group
// has the fewest running, not to the first in line. A check waits for a
// slot at most a quarter of -t, and is then refused (503).
type verifier struct {
	check    func(context.Context, Node) error
	cooldown time.Duration    // -t: no address is checked more often than a hung check would allow
	holdOff  time.Duration    // -u: a node that answered a DELETE's check is not checked again for a DELETE so soon
	now      func() time.Time // time.Now; the simulation's clock moves a round at a time

	mu      sync.Mutex
	running map[Node]*pendingCheck
	failed  map[Node]failedCheck
	answers map[Node]time.Time   // when a DELETE's check last found the node answering
	asked   map[netip.Prefix]int // checks under way, by the caller's network
	inSlot  map[netip.Prefix]int // checks holding a slot, by the caller's network
	free    int                  // slots free, of maxVerifying
	waiting []*slotWaiter
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

// newVerifier returns a verifier that runs check, refuses an address whose
// check failed for cooldown, and refuses DELETEs of a node that answered
// for holdOff.
func newVerifier(check func(context.Context, Node) error, cooldown, holdOff time.Duration) *verifier {
	return &verifier{
		check:    check,
		cooldown: cooldown,
		holdOff:  holdOff,
		answers:  map[Node]time.Time{},
		now:      time.Now,
		free:     maxVerifying,
		running:  map[Node]*pendingCheck{},
		failed:   map[Node]failedCheck{},
		asked:    map[netip.Prefix]int{},
		inSlot:   map[netip.Prefix]int{},
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
		group := callerGroup(src)
		if !trusted && v.asked[group] >= perGroup {
			v.mu.Unlock()
			return errBusy
		}
		p := &pendingCheck{done: make(chan struct{})}
		v.running[n] = p
		v.asked[group]++
		v.mu.Unlock()

		if p.err = v.acquire(ctx, group); p.err == nil {
			p.err = v.check(ctx, n)
			v.release(group)
		}
		p.cancelled = ctx.Err() != nil

		v.mu.Lock()
		delete(v.running, n)
		if v.asked[group]--; v.asked[group] == 0 {
			delete(v.asked, group)
		}
		if p.err != nil && !p.cancelled && !errors.Is(p.err, errNoSlot) {
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
