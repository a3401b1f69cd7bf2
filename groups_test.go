package main

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/matryer/is"
)

func TestSampleIsBalancedByGroup(t *testing.T) {
	is := is.New(t)
	var nodes []Node
	for i := range 1000 {
		nodes = append(nodes, nodeAt(fmt.Sprintf("198.51.%d.%d", i/250, 1+i%250), 5000)) // one /16
	}
	for i := range 20 {
		nodes = append(nodes, nodeAt(fmt.Sprintf("203.%d.0.1", i), 5000)) // 20 more groups
	}
	tbl := newTable(t, len(nodes), nodes...)
	tbl.rng = rand.New(rand.NewPCG(1, 2))
	big := 0
	for range 100 {
		sample, err := parseNodes(tbl.Sample(10, anyHost), maxListEntries)
		is.NoErr(err)
		is.Equal(len(sample), 10)
		seen := map[Node]bool{}
		for _, n := range sample {
			is.True(!seen[n]) // no repeats
			seen[n] = true
			if strings.HasPrefix(n.IP.String(), "198.51.") {
				big++
			}
		}
	}
	t.Logf("the /16 holding 98%% of the entries gave %d of 1,000 sampled", big)
	is.True(big <= 100) // about its share of the groups (1 in 21), not of the entries
}

// TestGroupIndexForgetsAddresses: a full seed that makes room, entry after
// entry, for 1,000 newcomers of other addresses holds in its indexes the
// groups it lists, not every group it ever took; and so does a node's
// index of the peers taken by announce.
func TestGroupIndexForgetsAddresses(t *testing.T) {
	is := is.New(t)
	tbl := memTable(self, 10, 10) // in memory: a thousand writes to disk prove nothing more
	for i := range 1000 {
		// each a group of its own
		_, err := tbl.AddAnnounced(0, nodeAt(fmt.Sprintf("%d.%d.0.1", 11+i/250, i%250), 5000))
		is.NoErr(err)
	}
	is.Equal(tbl.Len(), 10)
	is.Equal(len(tbl.groups), 10) // the groups it lists, not the 1,000 it took
	node := memTable(self, 100, 100)
	for i := range 1000 {
		n := nodeAt(fmt.Sprintf("203.0.%d.%d", i/250, 1+i%250), 5000)
		node.AddAnnounced(20, n)
		node.Remove(n)
	}
	is.Equal(len(node.groups), 0) // none left, in either index
}

// TestRemoveKeepsGroupsWhole removes nodes in one call, emptying some
// groups: samples never return a removed node, and still reach every group
// left, so the table's index by group matches its entries.
func TestRemoveKeepsGroupsWhole(t *testing.T) {
	is := is.New(t)
	var nodes, gone []Node
	for g := range 20 {
		for i := range 10 {
			n := nodeAt(fmt.Sprintf("203.%d.0.%d", g, 1+i), 5000)
			nodes = append(nodes, n)
			if g < 5 || i%2 == 0 { // 5 groups emptied, half of each other one
				gone = append(gone, n)
			}
		}
	}
	tbl := newTable(t, len(nodes), nodes...)
	removed, err := tbl.Remove(append(gone, gone[0])...) // a node named twice is removed once
	is.NoErr(err)
	is.Equal(len(removed), len(gone))
	is.Equal(tbl.Len(), len(nodes)-len(gone))
	left := map[Node]bool{}
	for _, n := range tbl.List() {
		left[n] = true
	}
	groups := map[string]bool{}
	for range 50 {
		sample, err := parseNodes(tbl.Sample(10, anyHost), maxListEntries) // 10 of 75: the draw by group
		is.NoErr(err)
		for _, n := range sample {
			is.True(left[n]) // never a removed node
			g, _ := groupOf(n)
			groups[g.String()] = true
		}
	}
	is.Equal(len(groups), 15) // every group left, none of those emptied
	_, err = tbl.Add(gone[0])
	is.NoErr(err)
	is.True(strings.Contains(string(tbl.Sample(100, anyHost)), gone[0].IP.String())) // an emptied group comes back
}

// TestPicksSpreadOverGroups: a node's picks take one candidate per group
// while candidates of other groups remain, never more than maxPerIP at one
// address, and on loopback, or on a LAN of one group, take what there is.
func TestPicksSpreadOverGroups(t *testing.T) {
	is := is.New(t)
	n := func(ip string, port int) Node { return nodeAt(ip, port) }
	picks := func(peers []Node, lists ...[]Node) (got []Node) {
		q := candidateQueues{lists: lists, spread: newPickSpread(peers)}
		for {
			m, _, ok := q.next(0)
			if !ok {
				return got
			}
			got = append(got, m)
		}
	}
	// A peer in 198.51/16 already; 6 candidates there, on two addresses, and 2 elsewhere.
	got := picks([]Node{n("198.51.9.9", 1)},
		[]Node{n("198.51.0.1", 1), n("198.51.0.1", 2), n("198.51.0.1", 3), n("203.0.0.1", 1)},
		[]Node{n("198.51.0.2", 1), n("198.51.0.2", 2), n("198.51.0.2", 3), n("192.0.2.1", 1)})
	is.Equal(got[:2], []Node{n("203.0.0.1", 1), n("192.0.2.1", 1)}) // the other groups first
	is.Equal(len(got), 6)                                           // then two at each address, no more
	perIP := map[string]int{}
	for _, m := range got {
		perIP[m.IP.String()]++
	}
	is.Equal(perIP["198.51.0.1"], maxPerIP)
	is.Equal(perIP["198.51.0.2"], maxPerIP)

	lan := []Node{n("192.168.1.1", 1), n("192.168.1.2", 1), n("192.168.1.3", 1), n("192.168.1.3", 2), n("192.168.1.3", 3)}
	is.Equal(len(picks(nil, lan)), 4) // a LAN of one group: every address, at most two at each
	var local []Node
	for port := range 5 {
		local = append(local, n("127.0.0.1", 1+port))
	}
	is.Equal(len(picks(nil, local)), 5) // loopback is exempt: networks on one machine work
}
