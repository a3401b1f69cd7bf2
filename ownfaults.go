package main

// Our own faults: what stops this host's failures from being counted
// against its peers. Every failed call used to count as the peer's: a
// seed out of descriptors (EMFILE) for -f rounds, under a flood of
// connections say, forgot every live node and wrote []. Now a check that
// failed because this host could not call out (out of descriptors, no
// address or port to call from, or no route to most of the peers at once, and to
// at least minNoRoute: one dead peer on our link is no sign) counts
// against nobody: the round keeps the table, says once what is wrong and
// what to do, and tries again the next round. A connect-back check that
// fails so answers 503, not 422: the caller did nothing wrong
// (TestOurFailuresRemoveNobody).

import (
	"errors"
	"log/slog"
)

// outcome is how one check of a round ended, as the sweep counts it.
type outcome uint8

const (
	answered outcome = iota
	failed           // the peer's fault: no node there, or not a node
	late             // no answer in time: capped, it may be ours (refresh.go)
	noRoute          // no route to the peer: ours if it is so for most of the round's
	ourFault         // this host could not call out
)

// outcomeOf is how a check that gave err ended.
func outcomeOf(err error) outcome {
	var pe *peerError
	switch {
	case err == nil:
		return answered
	case !errors.As(err, &pe):
		return failed
	case pe.ours:
		return ourFault
	case pe.noRoute:
		return noRoute
	case pe.timedOut:
		return late
	}
	return failed
}

// ours reports whether err says that this host could not make the call.
func ours(err error) bool { return outcomeOf(err) == ourFault }

// ownFaults turns a round's failures for want of a route into our own
// faults when they are most of its checks, and at least minNoRoute: then
// this host has lost its network, and its peers have not all gone. It returns what to tell the
// operator if any fault is ours, or "".
func ownFaults(outcomes []outcome) (why string) {
	counts := map[outcome]int{}
	for _, o := range outcomes {
		counts[o]++
	}
	if counts[noRoute] > len(outcomes)/2 && counts[noRoute] >= minNoRoute {
		for i, o := range outcomes {
			if o == noRoute {
				outcomes[i] = ourFault
			}
		}
		return "this host has no route to most of its peers: check its network"
	}
	if counts[ourFault] > 0 {
		return "this host could not call out (out of file descriptors, or the address it calls from " +
			"is gone): raise the limit on open files (ulimit -n), or give -a one of this host's addresses"
	}
	return ""
}

// sayOwnFaults logs why, once for as long as it stays the same, and says
// when calls go out again. last is what it said before, and it returns
// what it has said now.
func sayOwnFaults(log *slog.Logger, last, why string) string {
	switch {
	case why != "" && why != last:
		log.Warn("checks failed for a fault of this host's, and removed nobody: " + why)
	case why == "" && last != "":
		log.Info("this host calls out again")
	}
	return why
}
