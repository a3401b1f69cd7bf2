package main

// Fair check slots: what stops one caller's hung checks from queuing
// everyone else's announces. A connect-back check of an address that
// accepts and never answers holds a slot for -t. So callers of one subnet
// on another host (an IPv4 /24, an IPv6 /64) have at most perSubnet checks
// running or waiting, those of one group (groupOf: an IPv4 /16, an IPv6
// /32) at most perGroup, and 429 past either; a free slot goes to the
// waiting check whose group holds the fewest, then whose subnet does, then
// whose address does, not to the first in line; and no check waits for a
// slot more than -t/slotWaitShare (then 503). 64 attacker addresses
// holding 256 hung announces, in one subnet, in another subnet of the
// honest callers' group, or each in a group of its own: 15 of 15 honest
// announces from 3 other hosts within -t, both joining nodes listed within
// 2 rounds (TestCheckSlotsAreFair).

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// errBusy refuses an announce while its caller's network has perGroup
// checks under way; errNoSlot one that found no free slot in time.
var (
	errBusy = errors.New("too many announces from your network (your IPv4 /24 or /16, " +
		"IPv6 /64 or /32) are being checked; try again later")
	errNoSlot = errors.New("every check slot is taken; try again in a second")
)

// checkSlots shares maxVerifying slots between the callers of checks, by
// the caller's group, subnet and address.
type checkSlots struct {
	wait time.Duration // the longest a check waits for a slot

	mu      sync.Mutex
	asked   [2]map[netip.Prefix]int // checks under way, by the caller's group and subnet
	inSlot  [3]map[netip.Prefix]int // checks holding a slot, by the caller's group, subnet and address
	free    int                     // slots free, of maxVerifying
	waiting []*slotWaiter
}

// slotWaiter is a check waiting for a slot; ready is closed when it has one.
type slotWaiter struct {
	src   netip.Addr
	ready chan struct{}
}

// levels is what a check asked from src counts against: its group, its
// subnet and its address.
func levels(src netip.Addr) [3]netip.Prefix {
	return [3]netip.Prefix{callerGroup(src), subnetOf(src), netip.PrefixFrom(src, src.BitLen())}
}

// newCheckSlots returns maxVerifying free slots, for which a check waits
// at most wait.
func newCheckSlots(wait time.Duration) *checkSlots {
	s := &checkSlots{wait: wait, free: maxVerifying}
	for i := range s.asked {
		s.asked[i] = map[netip.Prefix]int{}
	}
	for i := range s.inSlot {
		s.inSlot[i] = map[netip.Prefix]int{}
	}
	return s
}

// enter counts a check asked by a caller at src, or refuses it with
// errBusy if the caller's group has perGroup under way, or its subnet
// perSubnet; trusted callers (this host) are not bounded. leave undoes it
// once the check is over.
func (s *checkSlots) enter(src netip.Addr, trusted bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := levels(src)
	if !trusted && (s.asked[0][at[0]] >= perGroup || s.asked[1][at[1]] >= perSubnet) {
		return errBusy
	}
	count(s.asked[:], at[:], 1)
	return nil
}

// leave ends a check that enter counted.
func (s *checkSlots) leave(src netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := levels(src)
	count(s.asked[:], at[:], -1)
}

// count adds by to the count of each level's prefix, forgetting those at 0.
func count(counts []map[netip.Prefix]int, at []netip.Prefix, by int) {
	for i, level := range counts {
		level[at[i]] += by
		if level[at[i]] == 0 {
			delete(level, at[i])
		}
	}
}

// holding is how many slots the group, subnet and address of src hold.
func (s *checkSlots) holding(src netip.Addr) []int {
	var held []int
	for i, p := range levels(src) {
		held = append(held, s.inSlot[i][p])
	}
	return held
}

// acquire takes a slot for a check asked by a caller at src, waiting at
// most s.wait, which leaves the caller time for the check itself.
func (s *checkSlots) acquire(ctx context.Context, src netip.Addr) error {
	s.mu.Lock()
	if s.free > 0 && len(s.waiting) == 0 {
		s.free--
		at := levels(src)
		count(s.inSlot[:], at[:], 1)
		s.mu.Unlock()
		return nil
	}
	w := &slotWaiter{src: src, ready: make(chan struct{})}
	s.waiting = append(s.waiting, w)
	s.mu.Unlock()
	deadline := time.NewTimer(s.wait)
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
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := slices.Index(s.waiting, w); i >= 0 {
		s.waiting = slices.Delete(s.waiting, i, i+1)
		return err
	}
	return nil // granted as it gave up: use the slot
}

// release frees the slot of a check asked from src for the waiting check
// whose group holds the fewest slots, then whose subnet does, then whose
// address does (the earliest of those), or for the next to come.
func (s *checkSlots) release(src netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := levels(src)
	count(s.inSlot[:], at[:], -1)
	if len(s.waiting) == 0 {
		s.free++
		return
	}
	next := 0
	for i, w := range s.waiting {
		if slices.Compare(s.holding(w.src), s.holding(s.waiting[next].src)) < 0 {
			next = i
		}
	}
	w := s.waiting[next]
	s.waiting = slices.Delete(s.waiting, next, next+1)
	at = levels(w.src)
	count(s.inSlot[:], at[:], 1)
	close(w.ready)
}
