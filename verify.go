package main

// Who may come in: the connect-back checks of announces and DELETEs
// (verifier), with check slots shared fairly between address groups, and
// room by group in a full table (Table.room; groupOf is in config.go).

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"
)

const (
	// maxVerifying bounds the connect-back checks that announces run at
	// once: so many that callers in 64 different allocations, 4 checks
	// each, hold only half of them.
	maxVerifying = 512
	// perGroup bounds the checks that callers of one group on another host
	// (an IPv4 /16, an IPv6 /32: see groupOf) can have running or waiting,
	// so that however many addresses and subnets it holds, it takes no
	// more than 4 slots.
	perGroup = 4
	// maxFailed bounds the addresses whose failed check is remembered.
	maxFailed = 4096
)

// errBusy refuses an announce while its caller's network has perGroup
// checks under way; errNoSlot one that found no free slot in time.
var (
	errBusy   = errors.New("too many announces from your network (your IPv4 /16 or IPv6 /32) are being checked; try again later")
	errNoSlot = errors.New("every check slot is taken; try again in a second")
)

// errAnswers refuses a DELETE of a node that still answers.
var errAnswers = errors.New("that node still answers: it leaves the lists once it stops answering; only a caller on this host may remove it before")

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

// slotWaiter is a check waiting for a slot; ready is closed when it has one.
type slotWaiter struct {
	group netip.Prefix
	ready chan struct{}
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

// acquire takes a slot for a check asked by group, waiting at most a
// quarter of -t, which leaves the caller time for the check itself.
func (v *verifier) acquire(ctx context.Context, group netip.Prefix) error {
	v.mu.Lock()
	if v.free > 0 && len(v.waiting) == 0 {
		v.free--
		v.inSlot[group]++
		v.mu.Unlock()
		return nil
	}
	w := &slotWaiter{group: group, ready: make(chan struct{})}
	v.waiting = append(v.waiting, w)
	v.mu.Unlock()
	deadline := time.NewTimer(v.cooldown / 4)
	defer deadline.Stop()
	var err error
	select {
	case <-w.ready:
		return nil
	case <-deadline.C:
		err = errNoSlot
	case <-ctx.Done():
		err = ctx.Err()
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if i := slices.Index(v.waiting, w); i >= 0 {
		v.waiting = slices.Delete(v.waiting, i, i+1)
		return err
	}
	return nil // granted as it gave up: use the slot
}

// release frees group's slot for the waiting check whose network holds the
// fewest slots (the earliest of those), or for the next to come.
func (v *verifier) release(group netip.Prefix) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.inSlot[group]--; v.inSlot[group] == 0 {
		delete(v.inSlot, group)
	}
	if len(v.waiting) == 0 {
		v.free++
		return
	}
	next := 0
	for i, w := range v.waiting {
		if v.inSlot[w.group] < v.inSlot[v.waiting[next].group] {
			next = i
		}
	}
	w := v.waiting[next]
	v.waiting = slices.Delete(v.waiting, next, next+1)
	v.inSlot[w.group]++
	close(w.ready)
}

// gone is the check behind a DELETE of n from a caller not on this host,
// the node itself included (behind a NAT, a neighbour shares its address):
// a leave is proven by silence. n is gone (nil) only if two checks in a
// row fail, since one lost packet proves nothing.
func (v *verifier) gone(ctx context.Context, src netip.Addr, n Node) error {
	for range 2 {
		switch err := v.answering(ctx, src, n); {
		case err == nil:
			return errAnswers
		case errors.Is(err, errBusy), errors.Is(err, errNoSlot), ctx.Err() != nil:
			return err
		}
	}
	return nil
}

// answering checks that n, a node we list, still answers, for a caller at
// src that would see it go. An answer is remembered for holdOff: a DELETE
// loop, or announces that ask n to make room, cost a check per holdOff.
func (v *verifier) answering(ctx context.Context, src netip.Addr, n Node) error {
	v.mu.Lock()
	at, ok := v.answers[n]
	delete(v.failed, n) // a new check, not the failure remembered from the last
	v.mu.Unlock()
	if ok && v.now().Sub(at) < v.holdOff {
		return nil
	}
	err := v.verify(ctx, src, false, n)
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.answers) >= maxFailed {
		clear(v.answers) // a flood of DELETEs costs checks again, not memory
	}
	if err == nil {
		v.answers[n] = v.now()
	}
	return err
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

// crowdedError refuses a newcomer to a full table whose group already has
// as many entries as any other: it may take the place of incumbent, one of
// its own group's, only if incumbent fails a check.
type crowdedError struct {
	group     netip.Prefix
	incumbent Node
}

func (e *crowdedError) Error() string {
	return fmt.Sprintf("no room: the table is full, and your group %s has as many entries as any other", e.group)
}

// WouldRefuse returns why AddUpTo(inbound, n) would refuse n, were it new, so that
// callers can refuse it before any work: errFull, errEnough or errHostFull,
// or a *crowdedError, whose incumbent must fail a check to make room. nil
// means there is room, or room can be made (see room).
func (t *Table) WouldRefuse(inbound int, n Node) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, err := t.room(inbound, n)
	return err
}

// room decides whether n, new, may come in. A full table (-m, or a node's
// inbound cap) does not simply refuse, or it would belong to whoever filled
// it first: a newcomer from a group smaller than the largest takes the
// place of a random entry of a largest group (victim); one from a largest
// group gets a *crowdedError. At a node, only peers taken by announce are
// weighed, and only a group with 3 or more of them gives way. t.mu is held.
func (t *Table) room(inbound int, n Node) (victim Node, err error) {
	if host, ok := hostOf(n); ok && t.perHost[host] >= t.hostMax {
		return Node{}, errHostFull
	}
	set, refusal := t.nodes, errFull
	switch {
	case len(t.nodes) >= t.max && inbound > 0:
		return Node{}, errFull
	case inbound > 0 && len(t.inbound) >= inbound:
		set, refusal = slices.DeleteFunc(slices.Clone(t.nodes), func(m Node) bool { return !t.inbound[m] }), errEnough
	case len(t.nodes) < t.max:
		return Node{}, nil
	}
	group, ok := groupOf(n)
	if !ok {
		return Node{}, refusal
	}
	count := map[netip.Prefix]int{}
	largest := 0
	for _, m := range set {
		if g, ok := groupOf(m); ok {
			count[g]++
			largest = max(largest, count[g])
		}
	}
	pick := func(in func(netip.Prefix) bool) Node {
		var from []Node
		for _, m := range set {
			if g, ok := groupOf(m); ok && in(g) {
				from = append(from, m)
			}
		}
		return from[t.rng.IntN(len(from))]
	}
	if inbound > 0 && largest < 3 {
		// As when a few hosts fill every node's slots: among 2 x -k honest
		// peers that is rare, and an evicted peer still lists the node, so
		// evicting from diverse sets would only grow its in-degree.
		return Node{}, refusal
	}
	if count[group] < largest {
		// Every group the same chance, then every entry in it: a random entry of a random largest group.
		var groups []netip.Prefix
		for g, c := range count {
			if c == largest {
				groups = append(groups, g)
			}
		}
		slices.SortFunc(groups, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) }) // map order is random; the choice must come from t.rng
		g := groups[t.rng.IntN(len(groups))]
		return pick(func(h netip.Prefix) bool { return h == g }), nil
	}
	if largest == 0 {
		return Node{}, refusal // full of loopback and link-local entries, which are never evicted
	}
	if inbound > 0 {
		return Node{}, refusal
	}
	return Node{}, &crowdedError{group: group, incumbent: pick(func(h netip.Prefix) bool { return h == group })}
}
