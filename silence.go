package main

import (
	"context"
	"errors"
	"net/netip"
)

// errAnswers refuses a DELETE of a node that still answers.
var errAnswers = errors.New("that node still answers: it leaves the lists once it stops answering; only a caller on this host may remove it before")

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
