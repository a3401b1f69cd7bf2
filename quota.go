package main

// Fair shares: what stops one caller from taking every connection, every
// check or every core of this process. Each caller counts against its
// address, its subnet (IPv4 /24, IPv6 /64) and its group (IPv4 /16, IPv6
// /32: groupOf), so that a caller with many addresses weighs as one host:
//   - connections: at most maxConnsPerIP open from one address but
//     loopback's (the operator's tools and the nodes of a network on one
//     machine share it), maxConnsPerSubnet from one subnet,
//     maxConnsPerGroup from one group, maxConns in all; one past any is
//     closed as it is accepted. One host that opens 2,000 connections to a
//     seed with 256 descriptors takes 16 of them
//     (TestOneHostCannotHoldEveryConnection);
//   - connect-back checks: at most perSubnet running or waiting for callers
//     of one subnet, perGroup for one group (429 past either), and
//     maxVerifying in all, for which a check waits -t/slotWaitShare at most
//     (then 503). 64 addresses holding 256 hung announces leave 15 of 15
//     honest announces checked and listed (TestCheckSlotsAreFair);
//   - samples: one caller group's at a time, one drawn at a time, so that a
//     flood of samples from one group waits for itself
//     (BenchmarkAnnounceDuringSampleFlood, TestSampleTurns).

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"
)

// errBusy refuses an announce while its caller's network has its share of
// checks under way; errNoSlot one that found no free slot in time.
var (
	errBusy = errors.New("too many announces from your network (your IPv4 /24 or /16, " +
		"IPv6 /64 or /32) are being checked; try again later")
	errNoSlot = errors.New("every check slot is taken; try again in a second")
)

// quota is what callers hold of this process at once: connections, the
// connect-back checks in flight, one per address however many callers ask,
// and turns for samples. It also gives a failed check again for a
// cool-down, to at most maxFailedChecks addresses.
type quota struct {
	check    func(context.Context, Node) error
	cooldown time.Duration    // -t: no address is checked more often than a hung check would allow
	now      func() time.Time // time.Now; the simulation's clock moves a round at a time
	slotWait time.Duration    // the longest a check waits for a slot
	slots    chan struct{}    // a check under way holds one, of maxVerifying
	drawing  chan struct{}    // full while a sample is drawn

	mu      sync.Mutex
	conns   map[netip.Prefix]int   // open connections by address and by subnet, loopback's not counted
	open    int                    // open connections in all
	checks  map[netip.Prefix]int   // checks under way by the caller's subnet and group
	running map[Node]*pendingCheck // the checks under way, by the address checked
	failed  map[Node]failedCheck   // checks that failed lately
	turns   map[netip.Prefix]*turn // the callers of a group asking for samples
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

// turn is the turn of one group's callers for a sample.
type turn struct {
	token   chan struct{} // full while a caller of the group has its turn
	callers int           // waiting for the turn or holding it
}

// newQuota returns a quota whose checks run check, and refuse an address
// whose check failed for cooldown; a check waits at most a share of
// cooldown for a slot.
func newQuota(check func(context.Context, Node) error, cooldown time.Duration) *quota {
	return &quota{check: check, cooldown: cooldown, now: time.Now, slotWait: cooldown / slotWaitShare,
		slots: make(chan struct{}, maxVerifying), drawing: make(chan struct{}, 1),
		conns: map[netip.Prefix]int{}, checks: map[netip.Prefix]int{}, turns: map[netip.Prefix]*turn{},
		running: map[Node]*pendingCheck{}, failed: map[Node]failedCheck{}}
}

// takeConn counts a new connection from ip, if the bounds allow it: its
// address's, its subnet's and its group's (so that one IPv6 /32, or one
// IPv4 /16, weighs as a few hosts, not as millions of addresses) and the
// total.
func (q *quota) takeConn(ip netip.Addr) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	addr, subnet, group := netip.PrefixFrom(ip, ip.BitLen()), subnetOf(ip), callerGroup(ip)
	if q.open >= maxConns || !ip.IsLoopback() && (q.conns[addr] >= maxConnsPerIP ||
		q.conns[subnet] >= maxConnsPerSubnet || q.conns[group] >= maxConnsPerGroup) {
		return false
	}
	q.open++
	if !ip.IsLoopback() {
		for _, p := range connShares(ip) {
			q.conns[p]++
		}
	}
	return true
}

// closeConn uncounts a connection from ip that has closed.
func (q *quota) closeConn(ip netip.Addr) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.open--
	if !ip.IsLoopback() {
		for _, p := range connShares(ip) {
			q.conns[p]--
			if q.conns[p] == 0 {
				delete(q.conns, p)
			}
		}
	}
}

// connShares is what a connection from ip counts against: its address,
// its subnet and its group, once where they are one prefix (a link-local
// address).
func connShares(ip netip.Addr) []netip.Prefix {
	addr, subnet, group := netip.PrefixFrom(ip, ip.BitLen()), subnetOf(ip), callerGroup(ip)
	if addr == subnet {
		return []netip.Prefix{addr}
	}
	return []netip.Prefix{addr, subnet, group}
}

// enter counts a check asked by a caller at src, or refuses it with
// errBusy if the caller's group has perGroup under way, or its subnet
// perSubnet; the operator (trusted) is not bounded. leave undoes it. q.mu
// is held.
func (q *quota) enter(src netip.Addr, trusted bool) error {
	group, subnet := callerGroup(src), subnetOf(src)
	if !trusted && (q.checks[group] >= perGroup || q.checks[subnet] >= perSubnet) {
		return errBusy
	}
	for _, p := range shares(src) {
		q.checks[p]++
	}
	return nil
}

// leave forgets a check of a caller at src that enter counted. q.mu is
// held.
func (q *quota) leave(src netip.Addr) {
	for _, p := range shares(src) {
		q.checks[p]--
		if q.checks[p] == 0 {
			delete(q.checks, p)
		}
	}
}

// shares is what a check of a caller at src counts against: its group and
// its subnet, once where they are one prefix (a loopback or link-local
// address is a group of its own).
func shares(src netip.Addr) []netip.Prefix {
	group, subnet := callerGroup(src), subnetOf(src)
	if group == subnet {
		return []netip.Prefix{group}
	}
	return []netip.Prefix{group, subnet}
}

// verify checks that n answers, on behalf of a caller at src; the
// operator's checks have no share of their own to keep to. A fresh check
// (a DELETE's, which asks whether n answers now) does not take a failure
// remembered from an earlier one.
func (q *quota) verify(ctx context.Context, src netip.Addr, operator bool, n Node, fresh bool) error {
	for {
		q.mu.Lock()
		if f, ok := q.failed[n]; ok && !fresh && q.now().Sub(f.at) < q.cooldown {
			q.mu.Unlock()
			return f.err
		}
		if p := q.running[n]; p != nil {
			q.mu.Unlock()
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
		if err := q.enter(src, operator); err != nil {
			q.mu.Unlock()
			return err
		}
		p := &pendingCheck{done: make(chan struct{})}
		q.running[n] = p
		q.mu.Unlock()

		p.err = q.slot(ctx)
		if p.err == nil {
			p.err = q.check(ctx, n)
			q.freeSlot()
		}
		p.cancelled = ctx.Err() != nil

		q.mu.Lock()
		delete(q.running, n)
		q.leave(src)
		if p.err != nil && !p.cancelled && !errors.Is(p.err, errNoSlot) && !ours(p.err) {
			q.remember(n, p.err)
		}
		q.mu.Unlock()
		close(p.done)
		return p.err
	}
}

// remember records a failed check, keeping at most maxFailedChecks: when
// full it forgets the expired ones, and records nothing if none has
// expired. q.mu is held.
func (q *quota) remember(n Node, err error) {
	if len(q.failed) >= maxFailedChecks {
		for m, f := range q.failed {
			if q.now().Sub(f.at) >= q.cooldown {
				delete(q.failed, m)
			}
		}
	}
	if len(q.failed) < maxFailedChecks {
		q.failed[n] = failedCheck{at: q.now(), err: err}
	}
}

// slot takes one of the maxVerifying slots a check runs in, waiting at
// most slotWait, which leaves the caller time for the check itself.
// freeSlot gives it back.
func (q *quota) slot(ctx context.Context) error {
	deadline := time.NewTimer(q.slotWait)
	defer deadline.Stop()
	select {
	case q.slots <- struct{}{}:
		return nil
	case <-deadline.C:
		return errNoSlot
	case <-ctx.Done():
		return ctx.Err()
	}
}

// freeSlot gives back a slot that slot took.
func (q *quota) freeSlot() { <-q.slots }

// sample waits for the turn of group, the caller's, then returns draw(),
// drawn when no other sample is; nil if ctx ends first. The turn holds
// until done is called: once the answer is written.
func (q *quota) sample(ctx context.Context, group netip.Prefix,
	draw func() []byte) (body []byte, done func()) {
	q.mu.Lock()
	tn := q.turns[group]
	if tn == nil {
		tn = &turn{token: make(chan struct{}, 1)}
		q.turns[group] = tn
	}
	tn.callers++
	q.mu.Unlock()
	leave := func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		tn.callers--
		if tn.callers == 0 {
			delete(q.turns, group)
		}
	}
	select {
	case tn.token <- struct{}{}:
	case <-ctx.Done():
		leave()
		return nil, nil
	}
	done = func() {
		<-tn.token
		leave()
	}
	select {
	case q.drawing <- struct{}{}:
	case <-ctx.Done():
		done()
		return nil, nil
	}
	defer func() { <-q.drawing }()
	return draw(), done
}

// boundedListener is a listener that keeps its connections within quota.
type boundedListener struct {
	net.Listener
	quota *quota
}

// Accept returns the next connection within the bounds, closing those past them.
func (l boundedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		var ip netip.Addr
		if tcp, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			ip = tcp.AddrPort().Addr().Unmap()
		}
		if l.quota.takeConn(ip) {
			return &boundedConn{Conn: c, closed: func() { l.quota.closeConn(ip) }}, nil
		}
		c.Close() // past a bound: the cheapest answer, which costs no descriptor beyond this moment
	}
}

// boundedConn is an accepted connection, uncounted once it closes.
type boundedConn struct {
	net.Conn
	once   sync.Once
	closed func()
}

func (c *boundedConn) Close() error {
	c.once.Do(c.closed)
	return c.Conn.Close()
}
