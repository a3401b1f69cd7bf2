package main

import (
	"errors"
	"math/rand/v2"
	"net/netip"
)

// groupOf is the group of n's address, for the rules that keep one address
// allocation from taking more than its share: its IPv4 /16 or its IPv6 /32.
// ok is false for loopback and link-local addresses, which mean something
// on one host or link only: each is a group of its own, and is never
// evicted to make room.
func groupOf(n Node) (g netip.Prefix, ok bool) {
	ip := netip.MustParseAddr(n.IP)
	if ip.IsLoopback() || ip.IsLinkLocalUnicast() {
		return netip.PrefixFrom(ip, ip.BitLen()), false
	}
	bits := 16
	if ip.Is6() {
		bits = 32
	}
	g, _ = ip.Prefix(bits)
	return g, true
}

// callerGroup is the group a caller counts against for perGroup: the
// same as an entry's (groupOf), so that one allocation, however many
// addresses and subnets it holds, has no more checks under way than one
// host.
func callerGroup(src netip.Addr) netip.Prefix {
	g, _ := groupOf(Node{IP: src.String()})
	return g
}

// hostOf is the address a node counts against for -hm, in both families.
// Loopback nodes count against none (ok is false), so networks on one
// machine are not capped.
func hostOf(n Node) (host netip.Addr, ok bool) {
	ip := netip.MustParseAddr(n.IP)
	return ip, !ip.IsLoopback()
}

var errHostFull = errors.New("that address has as many entries as one address may have (see -hm)")

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
		if byGroup[groups[i]] = members[:len(members)-1]; len(members) == 1 {
			groups[i] = groups[len(groups)-1]
			groups = groups[:len(groups)-1]
		}
	}
	return picked
}
