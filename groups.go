package main

// Address groups: what stops one allocation with many addresses from
// weighing as many hosts. An attacker may own a whole IPv4 /16 or IPv6 /32
// (groupOf). Samples and a node's own picks draw a group at random first,
// then an entry in it (balanced, groupIndex.sample), so a thousand
// addresses in one /16 are drawn no more often than one address elsewhere:
// the /16 holding 98% of a table gives under 10% of its samples
// (TestSampleIsBalancedByGroup). -hm caps the entries of one address, in
// both families (TestPerHostCap, TestOneIPv6LAN). Room in a full table is
// made by group too (room.go).

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
)

var errHostFull = errors.New("that address has as many entries as one address may have (see -hm)")

// groupOf is the group of n's address, for the rules that keep one address
// allocation from taking more than its share: its IPv4 /16 or its IPv6 /32.
// ok is false for loopback and link-local addresses, which mean something
// on one host or link only: each is a group of its own, and is never
// evicted to make room.
func groupOf(n Node) (g netip.Prefix, ok bool) {
	ip := n.IP
	if ip.IsLoopback() || ip.IsLinkLocalUnicast() {
		return netip.PrefixFrom(ip, ip.BitLen()), false
	}
	bits := groupBits4
	if ip.Is6() {
		bits = groupBits6
	}
	g, _ = ip.Prefix(bits)
	return g, true
}

// subnetOf is the subnet of src within its group: its IPv4 /24 or IPv6 /64;
// a loopback or link-local address is a subnet of its own.
func subnetOf(src netip.Addr) netip.Prefix {
	if src.IsLoopback() || src.IsLinkLocalUnicast() {
		return netip.PrefixFrom(src, src.BitLen())
	}
	bits := subnetBits4
	if src.Is6() {
		bits = subnetBits6
	}
	p, _ := src.Prefix(bits)
	return p
}

// evictable reports whether g, a group groupOf gave, is an allocation's:
// not a loopback or link-local address, each a group of its own.
func evictable(g netip.Prefix) bool { return g.Bits() < g.Addr().BitLen() }

// callerGroup is the group a caller counts against for perGroup: the
// same as an entry's (groupOf), so that one allocation, however many
// addresses and subnets it holds, has no more checks under way than one
// host.
func callerGroup(src netip.Addr) netip.Prefix {
	g, _ := groupOf(Node{IP: src})
	return g
}

// hostOf is the address a node counts against for -hm, in both families.
// Loopback nodes count against none (ok is false), so networks on one
// machine are not capped.
func hostOf(n Node) (host netip.Addr, ok bool) {
	return n.IP, !n.IP.IsLoopback()
}

// balanced picks at most want of nodes so that groups take turns: a group
// at random among those with nodes left, then one of its nodes at random,
// without repeats. A thousand addresses in one group then weigh as one.
func balanced(nodes []Node, want int, rng *rand.Rand) []Node {
	byGroup := map[netip.Prefix][]Node{}
	var groups []netip.Prefix
	for _, n := range nodes {
		g, _ := groupOf(n)
		if byGroup[g] == nil {
			groups = append(groups, g)
		}
		byGroup[g] = append(byGroup[g], n)
	}
	picked := make([]Node, 0, min(want, len(nodes)))
	for len(groups) > 0 && len(picked) < want {
		i := rng.IntN(len(groups))
		members := byGroup[groups[i]]
		j := rng.IntN(len(members))
		picked = append(picked, members[j])
		members[j] = members[len(members)-1]
		byGroup[groups[i]] = members[:len(members)-1]
		if len(members) == 1 {
			groups[i] = groups[len(groups)-1]
			groups = groups[:len(groups)-1]
		}
	}
	return picked
}

// pickSpread is how a node's peers and the candidates it picks spread over
// groups and addresses. Its own picks take at most one per group while
// candidates of other groups remain, as Bitcoin's outbound peers do, and
// never more than maxPerIP at one address, in either family, but on
// loopback: a node's peers then spread over as many groups as its
// candidates do (TestPicksSpreadOverGroups).
type pickSpread struct {
	groups map[netip.Prefix]int
	perIP  map[netip.Addr]int
}

func newPickSpread(peers []Node) *pickSpread {
	s := &pickSpread{groups: map[netip.Prefix]int{}, perIP: map[netip.Addr]int{}}
	for _, n := range peers {
		s.add(n, 1)
	}
	return s
}

// add counts n, a peer or a pick, by times (-1: a pick not taken).
func (s *pickSpread) add(n Node, times int) {
	g, _ := groupOf(n)
	s.groups[g] += times
	if host, ok := hostOf(n); ok {
		s.perIP[host] += times
	}
}

// has reports whether n's group has a peer or pick already.
func (s *pickSpread) has(n Node) bool {
	g, _ := groupOf(n)
	return s.groups[g] > 0
}

// full reports whether n's address has maxPerIP peers and picks already.
func (s *pickSpread) full(n Node) bool {
	host, ok := hostOf(n)
	return ok && s.perIP[host] >= maxPerIP
}

// groupIndex is a table's entries by group, kept as they change, so that a
// sample of a large table costs O(sample), not O(table); and its count of
// entries per address, for -hm. The table's lock guards it.
type groupIndex struct {
	members map[netip.Prefix][]Node
	order   []netip.Prefix // the keys of members, for drawing one at random
	perHost map[netip.Addr]int
}

func newGroupIndex() groupIndex {
	return groupIndex{members: map[netip.Prefix][]Node{}, perHost: map[netip.Addr]int{}}
}

// add indexes n, which is new.
func (g *groupIndex) add(n Node) {
	group, _ := groupOf(n)
	if g.members[group] == nil {
		g.order = append(g.order, group)
	}
	g.members[group] = append(g.members[group], n)
	if host, ok := hostOf(n); ok {
		g.perHost[host]++
	}
}

// drop forgets the nodes in gone, all indexed, in one pass over each group
// they were in: a sweep may remove thousands at once.
func (g *groupIndex) drop(gone map[Node]bool) {
	touched := map[netip.Prefix]bool{}
	for n := range gone {
		if host, ok := hostOf(n); ok {
			g.perHost[host]--
			if g.perHost[host] == 0 {
				delete(g.perHost, host) // or the index keeps every address it ever held
			}
		}
		group, _ := groupOf(n)
		touched[group] = true
	}
	for group := range touched {
		g.members[group] = slices.DeleteFunc(g.members[group], func(m Node) bool { return gone[m] })
		if len(g.members[group]) == 0 {
			delete(g.members, group)
		}
	}
	emptied := func(p netip.Prefix) bool { return touched[p] && g.members[p] == nil }
	g.order = slices.DeleteFunc(g.order, emptied)
}

// hostFull reports whether n's address already has hostMax entries.
func (g *groupIndex) hostFull(n Node, hostMax int) bool {
	host, ok := hostOf(n)
	return ok && g.perHost[host] >= hostMax
}

// sample picks at most n of nodes, the indexed entries, with groups taking
// turns, and none that skip names. A small table is drawn whole
// (balanced); from a large one a group is drawn, then an entry in it, and a
// repeat is drawn again: O(n) expected.
func (g *groupIndex) sample(nodes []Node, n int, skip func(Node) bool, rng *rand.Rand) []Node {
	if smallSample*n >= len(nodes) {
		return balanced(slices.DeleteFunc(slices.Clone(nodes), skip), n, rng)
	}
	var picked []Node
	chosen := map[Node]bool{}
	for try := 0; len(picked) < n && try < sampleTries*n; try++ {
		members := g.members[g.order[rng.IntN(len(g.order))]]
		m := members[rng.IntN(len(members))]
		if !chosen[m] && !skip(m) {
			chosen[m] = true
			picked = append(picked, m)
		}
	}
	return picked
}
