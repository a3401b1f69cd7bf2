package main

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"time"
)

// errBusy refuses an announce while its caller's network has perGroup
// checks under way; errNoSlot one that found no free slot in time.
var (
	errBusy   = errors.New("too many announces from your network (your IPv4 /16 or IPv6 /32) are being checked; try again later")
	errNoSlot = errors.New("every check slot is taken; try again in a second")
)

// slotWaiter is a check waiting for a slot; ready is closed when it has one.
type slotWaiter struct {
	group netip.Prefix
	ready chan struct{}
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
