package main

// Fair check slots: what stops one caller's hung checks from queuing
// everyone else's announces. A connect-back check of an address that
// accepts and never answers holds a slot for -t. So callers of one address
// group on another host (groupOf: however many addresses and subnets it
// holds) have at most perGroup checks running or waiting (429 past that);
// a free slot goes to the waiting check whose group holds the fewest, not
// to the first in line; and no check waits for a slot more than
// -t/slotWaitShare (then 503). 64 attacker addresses holding 256 hung
// announces: 15 of 15 honest announces from 3 other hosts within -t, both
// joining nodes listed within 2 rounds (TestCheckSlotsAreFair).

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
	errBusy = errors.New("too many announces from your network (your IPv4 /16 or IPv6 /32) " +
		"are being checked; try again later")
	errNoSlot = errors.New("every check slot is taken; try again in a second")
)

// checkSlots shares maxVerifying slots between the callers of checks, by
// the caller's group.
type checkSlots struct {
	wait time.Duration // the longest a check waits for a slot

	mu      sync.Mutex
	asked   map[netip.Prefix]int // checks under way, by the caller's group
	inSlot  map[netip.Prefix]int // checks holding a slot, by the caller's group
	free    int                  // slots free, of maxVerifying
	waiting []*slotWaiter
}

// slotWaiter is a check waiting for a slot; ready is closed when it has one.
type slotWaiter struct {
	group netip.Prefix
	ready chan struct{}
}

// newCheckSlots returns maxVerifying free slots, for which a check waits
// at most wait.
func newCheckSlots(wait time.Duration) *checkSlots {
	return &checkSlots{
		wait:   wait,
		free:   maxVerifying,
		asked:  map[netip.Prefix]int{},
		inSlot: map[netip.Prefix]int{},
	}
}

// enter counts a check asked by a caller at src, or refuses it with
// errBusy if the caller's group has perGroup under way; trusted callers
// (this host) are not bounded. leave undoes it once the check is over.
func (s *checkSlots) enter(src netip.Addr, trusted bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	group := callerGroup(src)
	if !trusted && s.asked[group] >= perGroup {
		return errBusy
	}
	s.asked[group]++
	return nil
}

// leave ends a check that enter counted.
func (s *checkSlots) leave(src netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	group := callerGroup(src)
	s.asked[group]--
	if s.asked[group] == 0 {
		delete(s.asked, group)
	}
}

// acquire takes a slot for a check asked by a caller at src, waiting at
// most s.wait, which leaves the caller time for the check itself.
func (s *checkSlots) acquire(ctx context.Context, src netip.Addr) error {
	group := callerGroup(src)
	s.mu.Lock()
	if s.free > 0 && len(s.waiting) == 0 {
		s.free--
		s.inSlot[group]++
		s.mu.Unlock()
		return nil
	}
	w := &slotWaiter{group: group, ready: make(chan struct{})}
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
// whose group holds the fewest slots (the earliest of those), or for the
// next to come.
func (s *checkSlots) release(src netip.Addr) {
	group := callerGroup(src)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inSlot[group]--
	if s.inSlot[group] == 0 {
		delete(s.inSlot, group)
	}
	if len(s.waiting) == 0 {
		s.free++
		return
	}
	next := 0
	for i, w := range s.waiting {
		if s.inSlot[w.group] < s.inSlot[s.waiting[next].group] {
			next = i
		}
	}
	w := s.waiting[next]
	s.waiting = slices.Delete(s.waiting, next, next+1)
	s.inSlot[w.group]++
	close(w.ready)
}
