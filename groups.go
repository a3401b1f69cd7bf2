package main

// Address groups: what stops one allocation with many addresses from
// weighing as many hosts. An attacker may own a whole IPv4 /16 or IPv6 /32
// (groupOf). Samples and a node's own picks draw a group at random first,
// then an entry in it (balanced, Table.sample), so a thousand
// addresses in one /16 are drawn no more often than one address elsewhere:
// the /16 holding 98% of a table gives under 10% of its samples
// (TestSampleIsBalancedByGroup). -hm caps the entries of one address, in
// both families (TestPerHostCap, TestOneIPv6LAN). Room in a full table is
// made by group too (room.go).

import (
	"errors"
	"math/rand/v2"
	"net/netip"
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
