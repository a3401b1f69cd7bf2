package main

// Connect-back checks: what stops a caller from filling a table with
// addresses where no node runs, or from making us call anyone it likes.
// The blog added whatever it was sent. Here an announced node is added only
// once it answers GET / itself (verifier.verify), and a caller on another
// host may announce only the address it calls from (mayAnnounce), so that
// no host can make this process call a third party or its own loopback
// (TestAnnounceOnlyYourself, TestMultiHost). Announces of one address share
// one check, and a failed check is given again for -t: 200 announces of an
// address that never answers cost one check (TestFairVerification). The
// checks take their callers' share of slots first (quota.go).

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// mayAnnounce says why a caller at src may not announce n, or nil if it
// may: the operator may announce anyone; a caller on another host only
// itself, and never a link-local address.
func mayAnnounce(src netip.Addr, operator bool, n Node) error {
	switch {
	case operator:
		return nil
	case n.IP != src:
		return fmt.Errorf("announce only yourself: this call came from %s", src)
	case n.scoped():
		return errors.New("link-local addresses are not taken from other hosts")
	}
	return nil
}

// verifier runs the connect-back checks: the checks in flight, one per
// address however many callers ask, and the failures given again for a
// cool-down, of at most maxFailedChecks addresses.
type verifier struct {
	check    func(context.Context, Node) error
	cooldown time.Duration // -t: no address is checked more often than a hung check would allow
	now      func() time.Time
	quota    *quota

	mu      sync.Mutex
	running map[Node]*pendingCheck
	failed  map[Node]failedCheck
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

// newVerifier returns a verifier that runs check and refuses an address
// whose check failed for cooldown.
func newVerifier(check func(context.Context, Node) error, cooldown time.Duration) *verifier {
	return &verifier{check: check, cooldown: cooldown, now: time.Now, quota: newQuota(cooldown / slotWaitShare),
		running: map[Node]*pendingCheck{}, failed: map[Node]failedCheck{}}
}

// verify checks that n answers, on behalf of a caller at src; the
// operator's checks have no share of their own to keep to. A fresh check
// (a DELETE's, which asks whether n answers now) does not take a failure
// remembered from an earlier one.
func (v *verifier) verify(ctx context.Context, src netip.Addr, operator bool, n Node, fresh bool) error {
	for {
		v.mu.Lock()
		if f, ok := v.failed[n]; ok && !fresh && v.now().Sub(f.at) < v.cooldown {
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
		if err := v.quota.enter(src, operator); err != nil {
			v.mu.Unlock()
			return err
		}
		p := &pendingCheck{done: make(chan struct{})}
		v.running[n] = p
		v.mu.Unlock()

		p.err = v.quota.slot(ctx)
		if p.err == nil {
			p.err = v.check(ctx, n)
			v.quota.freeSlot()
		}
		p.cancelled = ctx.Err() != nil

		v.mu.Lock()
		delete(v.running, n)
		v.quota.leave(src)
		if p.err != nil && !p.cancelled && !errors.Is(p.err, errNoSlot) && !ours(p.err) {
			v.remember(n, p.err)
		}
		v.mu.Unlock()
		close(p.done)
		return p.err
	}
}

// remember records a failed check, keeping at most maxFailedChecks: when
// full it forgets the expired ones, and records nothing if none has
// expired. v.mu is held.
func (v *verifier) remember(n Node, err error) {
	if len(v.failed) >= maxFailedChecks {
		for m, f := range v.failed {
			if v.now().Sub(f.at) >= v.cooldown {
				delete(v.failed, m)
			}
		}
	}
	if len(v.failed) < maxFailedChecks {
		v.failed[n] = failedCheck{at: v.now(), err: err}
	}
}
