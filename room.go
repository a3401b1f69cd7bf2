package main

import (
	"fmt"
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
	return fmt.Sprintf("no room: the table is full, and your group %s has as many entries as any other", e.group)
}

// WouldRefuse returns why AddUpTo(inbound, n) would refuse n, were it new, so that
// callers can refuse it before any work: errFull, errEnough or errHostFull,
// or a *crowdedError, whose incumbent must fail a check to make room. nil
// means there is room, or room can be made (see room).
func (t *Table) WouldRefuse(maxInbound int, n Node) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, err := t.room(maxInbound, n)
	return err
}

// room decides whether n, new, may come in. A full table (-m, or a node's
// inbound cap) does not simply refuse, or it would belong to whoever filled
// it first: a newcomer from a group smaller than the largest takes the
// place of a random entry of a largest group (victim); one from a largest
// group gets a *crowdedError. At a node, only peers taken by announce are
// weighed, and only a group with 3 or more of them gives way. t.mu is held.
func (t *Table) room(maxInbound int, n Node) (victim Node, err error) {
	if host, ok := hostOf(n); ok && t.perHost[host] >= t.hostMax {
		return Node{}, errHostFull
	}
	set, refusal := t.nodes, errFull
	switch {
	case len(t.nodes) >= t.max && maxInbound > 0:
		return Node{}, errFull
	case maxInbound > 0 && len(t.inbound) >= maxInbound:
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
	if maxInbound > 0 && largest < 3 {
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
	if maxInbound > 0 {
		return Node{}, refusal
	}
	return Node{}, &crowdedError{group: group, incumbent: pick(func(h netip.Prefix) bool { return h == group })}
}
