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
// checks wait for slots, shared fairly between callers (checkslots.go).

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// mayAnnounce says why a caller at src may not announce n, or nil if it
// may: a caller on this host (local) may announce anyone; one on another
// host only itself, and never a link-local address.
func mayAnnounce(src netip.Addr, local bool, n Node) error {
	switch {
	case local:
		return nil
	case n.IP != src:
		return fmt.Errorf("announce only yourself: this call came from %s", src)
	case n.scoped():
		return errors.New("link-local addresses are not taken from other hosts")
	}
	return nil
}

// verifier runs the connect-back checks of announces and DELETEs:
// announces of one address share one check, a failed check is given again
// for a cool-down, and every check takes a slot (checkSlots) first. It
// remembers an answer to a check that asked whether a listed node still
// answers (answering) for holdOff, and how many entries timeouts may still
// remove before the next round (late).
type verifier struct {
	check    func(context.Context, Node) error
	cooldown time.Duration    // -t: no address is checked more often than a hung check would allow
	holdOff  time.Duration    // until the next round's check must have come (answerHolds)
	now      func() time.Time // time.Now; the simulation's clock moves a round at a time
	slots    *checkSlots

	mu        sync.Mutex
	running   map[Node]*pendingCheck
	failed    map[Node]failedCheck
	answers   map[Node]time.Time // when answering last found the node answering
	checkedAt map[Node]time.Time // when a check nobody asked for last did (checked)
	late      int                // entries that timeouts may still remove until the next round
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
// check failed for cooldown, and remembers for holdOff that a node answered.
func newVerifier(check func(context.Context, Node) error,
	cooldown, holdOff time.Duration) *verifier {
	return &verifier{
		check:     check,
		cooldown:  cooldown,
		holdOff:   holdOff,
		now:       time.Now,
		slots:     newCheckSlots(cooldown / slotWaitShare),
		running:   map[Node]*pendingCheck{},
		failed:    map[Node]failedCheck{},
		answers:   map[Node]time.Time{},
		checkedAt: map[Node]time.Time{},
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
		if err := v.slots.enter(src, trusted); err != nil {
			v.mu.Unlock()
			return err
		}
		p := &pendingCheck{done: make(chan struct{})}
		v.running[n] = p
		v.mu.Unlock()

		p.err = v.slots.acquire(ctx, src)
		if p.err == nil {
			p.err = v.check(ctx, n)
			v.slots.release(src)
		}
		p.cancelled = ctx.Err() != nil

		v.mu.Lock()
		delete(v.running, n)
		v.slots.leave(src)
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

// answering checks that n, a node we list, still answers, for a caller at
// src that would see it go: a DELETE (silence.go), or a newcomer that asks
// n to make room (room.go). An answer is remembered for holdOff, and so is
// an answer to a check that nobody asked for, the round's or that of n's
// announce (checked), so that a loop of either costs no check while n
// answers those. But a caller at n's own address (n leaving, having closed
// its listener; or a neighbour behind its NAT) is not told those answers:
// its DELETE is checked, once per holdOff.
func (v *verifier) answering(ctx context.Context, src netip.Addr, n Node) error {
	own := src == n.IP
	v.mu.Lock()
	at, ok := v.answers[n]
	round, byRound := v.checkedAt[n]
	delete(v.failed, n) // a new check, not the failure remembered from the last
	v.mu.Unlock()
	switch {
	case ok && v.now().Sub(at) < v.holdOff:
		return nil
	case byRound && !own && v.now().Sub(round) < v.holdOff:
		return nil
	}
	err := v.verify(ctx, src, false, n)
	if err == nil {
		v.note(v.answers, n)
	}
	return err
}

// checked notes that n has just answered a check that no DELETE asked
// for: the round's (refresher.sweep), or that of its own announce.
func (v *verifier) checked(n Node) { v.note(v.checkedAt, n) }

// allowLate lets timeouts remove n more entries until the next round: what
// the round's cap on them left (refresher.sweep).
func (v *verifier) allowLate(n int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.late = n
}

// takeLate takes one of the removals that timeouts may still make, if one is left.
func (v *verifier) takeLate() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.late == 0 {
		return false
	}
	v.late--
	return true
}

// note records in answers that n answered now, keeping at most maxAnswers.
func (v *verifier) note(answers map[Node]time.Time, n Node) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(answers) >= maxAnswers {
		clear(answers) // a flood of DELETEs costs checks again, not memory
	}
	answers[n] = v.now()
}
