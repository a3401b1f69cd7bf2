package main

// Room by diversity: what stops "first come, first kept". A table that
// refuses when full belongs to whoever filled it first: 125 addresses of
// one host used to fill the seed's 1,000 places in half a second and keep
// every newcomer out for good. So a full table makes room by address group
// (groups.go): a newcomer from a smaller group takes the place of an entry
// of a largest group, and one from a largest group gets in only if an
// incumbent of its own group fails a check (test before evict, bitcoin
// #9037). TestRoomByDiversity shows it; against 10,000 addresses in 4
// groups the attacker holds 3.6% of the seed's table (TestAttack).

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
)

// crowdedError refuses a newcomer to a full table whose group already has
// as many entries as any other: it may take the place of incumbent, one of
// its own group's, only if incumbent fails a check.
type crowdedError struct {
	group     netip.Prefix
	incumbent Node
}

func (e *crowdedError) Error() string {
	return fmt.Sprintf("no room: the table is full, "+
		"and your group %s has as many entries as any other", e.group)
}

// roomState is what room weighs: how many entries a table holds, how many
// of those a node took by their announce, the table's caps, and by group
// the entries it weighs: every one at a seed, those taken by announce at a
// node, each group's in the order they came in.
type roomState struct {
	entries, inbound int
	max              int // -m
	maxInbound       int // a node's cap on peers taken by announce; 0 for the seed, which has none
	byGroup          map[netip.Prefix][]*peer
}

// room decides whether n, new, may come in. A full seed (-m), or a node at
// its cap of peers taken by announce, does not simply refuse, or it would
// belong to whoever filled it first: a newcomer from a group smaller than
// the largest takes the place of a random entry of a largest group
// (victim); at a seed, one from a largest group gets a *crowdedError. At a
// node, only peers taken by announce are weighed, and only a group with
// givesWayAt of them gives way; a node full to -m refuses announces
// outright. Loopback and link-local entries are groups of their own, and
// are never weighed.
func room(s roomState, n Node, rng *rand.Rand) (victim *peer, err error) {
	refusal := errFull
	switch {
	case s.entries >= s.max && s.maxInbound > 0:
		return nil, errFull
	case s.maxInbound > 0 && s.inbound >= s.maxInbound:
		refusal = errEnough
	case s.entries < s.max:
		return nil, nil
	}
	group, ok := groupOf(n)
	if !ok {
		return nil, refusal
	}
	largest := 0
	for g, members := range s.byGroup {
		if evictable(g) {
			largest = max(largest, len(members))
		}
	}
	pick := func(g netip.Prefix) *peer { return s.byGroup[g][rng.IntN(len(s.byGroup[g]))] }
	if s.maxInbound > 0 && largest < givesWayAt {
		// As when a few hosts fill every node's slots: among 2 x -k honest
		// peers that is rare, and an evicted peer still lists the node, so
		// evicting from diverse sets would only grow its in-degree.
		return nil, refusal
	}
	if len(s.byGroup[group]) < largest {
		// Every group the same chance, then every entry in it: a random
		// entry of a random largest group. Map order is random, so the
		// groups are sorted: the choice must come from rng alone.
		var groups []netip.Prefix
		for g, members := range s.byGroup {
			if evictable(g) && len(members) == largest {
				groups = append(groups, g)
			}
		}
		slices.SortFunc(groups, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
		return pick(groups[rng.IntN(len(groups))]), nil
	}
	if largest == 0 || s.maxInbound > 0 {
		return nil, refusal // full of loopback and link-local entries, which are never evicted; or a node's
	}
	return nil, &crowdedError{group: group, incumbent: pick(group).Node}
}

// testBeforeEvict is the connect-back check of n, announced from src (the
// operator's if operator), which a full table can take only in the place
// of crowded's incumbent. The incumbent is checked first (an answer holds
// for a round: answerHolds), for -t/incumbentShare at most, so that both
// checks end within n's own -t, when its call gives up; and n only if the
// incumbent failed. The incumbent leaves only once n has passed, in the
// same change as n comes in (Table.Replace), so that a caller with no node
// behind it cannot evict its own group's entries on one lost packet, nor
// on one timeout past the round's cap on them. It returns crowded while
// the incumbent answers.
func testBeforeEvict(ctx context.Context, a api, src netip.Addr, operator bool, n Node,
	crowded *crowdedError) error {
	short, cancel := context.WithTimeout(ctx, a.checks.cooldown/incumbentShare) // cooldown is -t
	silent := answering(short, a, src, operator, crowded.incumbent)
	cancel()
	if errors.Is(silent, context.DeadlineExceeded) && ctx.Err() == nil { // waited on another's check of it
		silent = &peerError{reason: "timed out", timedOut: true}
	}
	switch {
	case silent == nil:
		return crowded
	case errors.Is(silent, errBusy), errors.Is(silent, errNoSlot), ctx.Err() != nil, ours(silent):
		return silent
	}
	if err := a.checks.verify(ctx, src, operator, n, false); err != nil {
		return err // nobody leaves: the round's share of removals by timeout is untouched
	}
	if timedOut(silent) && !a.table.TakeLate() {
		return crowded // its silence may be ours, and timeouts have removed their share this round
	}
	return nil
}
