package main

// Leave by silence: what stops another host from removing a live node.
// The blog's DELETE /nodes/ removed whatever it was sent. Here a DELETE
// from another host, the node's own address included (behind a NAT, a
// neighbour shares it), removes a node only once it no longer answers:
// checksToLeave checks in a row must fail, and an answer holds for -u. A
// leaving node closes its listener before its goodbye, so that is believed
// at once (TestLeaveIsProvenBySilence, TestProcessLeave). In the
// simulation with 5% loss, 20 DELETEs of each of 10 live nodes every round
// keep them out of the seed's list 0.0% of the time, against 41.0% with
// one check per DELETE and no hold-off (TestAttackDeleteLoop, DESIGN.md).

import (
	"context"
	"errors"
	"net/netip"
	"time"
)

// errAnswers refuses a DELETE of a node that still answers.
var errAnswers = errors.New("that node still answers: it leaves the lists once it stops " +
	"answering; only a caller on this host may remove it before")

// errLate refuses a DELETE of a node whose checks timed out when timeouts
// have removed as many entries as they may until the next round.
var errLate = errors.New("that node's checks time out, which may be this process's fault: " +
	"it leaves the lists at a round's check; try again after one")

// gone is the check behind a DELETE of n from a caller at src, not on this
// host: n is gone (nil) only if checksToLeave checks in a row fail, since
// one lost packet proves nothing. Checks that time out may be this
// process's fault, and remove n only within the round's cap on removals
// by timeout (Table.TakeLate), as the sweep's do.
func gone(ctx context.Context, a api, src netip.Addr, n Node) error {
	late := false
	for range checksToLeave {
		err := answering(ctx, a, src, false, n)
		switch {
		case err == nil:
			return errAnswers
		case errors.Is(err, errBusy), errors.Is(err, errNoSlot), ctx.Err() != nil, ours(err):
			return err // it says nothing of n
		case timedOut(err):
			late = true
		}
	}
	if late && !a.table.TakeLate() {
		return errLate
	}
	return nil
}

// answering checks that n, an entry, still answers, for a caller at src
// (the operator if operator) that would see it go: a DELETE, or a newcomer
// that asks n to make room (room.go); unless an answer that n gave lately
// holds for src (answerHoldsFor), so that a loop of either costs no check
// while n answers.
func answering(ctx context.Context, a api, src netip.Addr, operator bool, n Node) error {
	if a.table.AnswerHolds(n, src, a.holdOff) {
		return nil
	}
	err := a.checks.verify(ctx, src, operator, n, true)
	if err == nil {
		a.table.Answered(n, src == n.IP)
	}
	return err
}

// answerHoldsFor reports whether a DELETE of p from src may rest on an
// answer that p gave lately, within holdOff (answerHolds: until the next
// round's check must have come). A caller at p's own address (p leaving,
// having closed its listener; or a neighbour behind its NAT) is not told
// the answers to other checks: its DELETE is checked, once per holdOff.
func answerHoldsFor(p *peer, src netip.Addr, now time.Time, holdOff time.Duration) bool {
	at := p.answered
	if src == p.IP {
		at = p.ownAnswered
	}
	return now.Sub(at) < holdOff
}
