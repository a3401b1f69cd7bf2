package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// netMap is what a crawl found: each process that answered GET /nodes/ with
// the entries it lists, and the entries that did not answer.
type netMap struct {
	lists   map[Node][]Node
	dead    []Node
	unasked int // addresses heard of that -m left unasked: the crawl was cut
}

// runMap crawls the network from the seeds and prints its map to stdout. It
// fails if no seed answered; stopped mid-crawl, it prints nothing.
func runMap(ctx context.Context, cfg config, stdout io.Writer, log *slog.Logger) error {
	if cfg.web != "" {
		return runMapWeb(ctx, cfg, log) // mapweb.go: a live page instead
	}
	seeds, err := bootstrapSeeds(cfg)
	if err != nil {
		return err
	}
	m := crawl(ctx, newPeerClient(time.Duration(cfg.timeout), Node{}), seeds, cfg.max, cfg.hostMax)
	if ctx.Err() != nil {
		return nil // stopped: the calls it cut short say nothing of who is alive
	}
	if !slices.ContainsFunc(seeds, func(s Node) bool { return m.lists[s] != nil }) {
		return errors.New("no seed answered GET /nodes/: " + names(seeds))
	}
	if len(m.lists) <= maxDrawn || cfg.draw {
		m.mermaid(stdout)
	}
	fmt.Fprintln(stdout, m.summary())
	return nil
}

// crawl asks every process it hears of for a sample of its list (up to
// maxSample entries: all of a node's), breadth first from the seeds, until
// it has asked max of them. It calls each address once, and at most
// hostMax ports of one IP (loopback exempt), so that a list cannot aim it
// at one host's ports (a list of many hosts can still send it to up to
// max of them); it keeps at most maxSample entries of a list, even from
// a process that ignores ?sample. Each wave runs through forEach, so at
// most maxInFlight calls are open, each bounded by the client's timeout.
func crawl(ctx context.Context, c *peerClient, seeds []Node, max, hostMax int) netMap {
	m := netMap{lists: map[Node][]Node{}}
	seen := map[Node]bool{}
	perHost := map[netip.Addr]int{}
	var wave []Node
	for _, s := range seeds {
		if !seen[s] {
			seen[s] = true
			wave = append(wave, s)
		}
	}
	for len(wave) > 0 && len(m.lists)+len(m.dead) < max && ctx.Err() == nil {
		wave = wave[:min(len(wave), max-len(m.lists)-len(m.dead))]
		var mu sync.Mutex
		lists := map[Node][]Node{}
		ok := forEach(ctx, wave, func(ctx context.Context, _ int, n Node) error {
			list, err := c.list(ctx, n, maxSample)
			mu.Lock()
			defer mu.Unlock()
			lists[n] = list // at most maxSample: list parses no more of a sample
			return err
		})
		var next []Node
		for i, n := range wave {
			if !ok[i] {
				m.dead = append(m.dead, n)
				continue
			}
			m.lists[n] = append([]Node{}, lists[n]...) // non-nil: it answered
			for _, l := range lists[n] {
				if !seen[l] && (l.IP.IsLoopback() || perHost[l.IP] < hostMax) {
					seen[l] = true
					perHost[l.IP]++
					next = append(next, l)
				}
			}
		}
		wave = next
	}
	m.unasked = len(seen) - len(m.lists) - len(m.dead)
	return m
}

// sorted returns the processes that answered, then the dead, each by address.
func (m netMap) sorted() []Node {
	var nodes []Node
	for n := range m.lists {
		nodes = append(nodes, n)
	}
	dead := slices.Clone(m.dead)
	slices.SortFunc(nodes, compareNodes)
	slices.SortFunc(dead, compareNodes)
	return append(nodes, dead...)
}

// compareNodes orders nodes by IP, then port.
func compareNodes(a, b Node) int {
	return cmp.Or(a.IP.Compare(b.IP), cmp.Compare(a.Port, b.Port))
}

// knows reports whether a answered and lists b.
func (m netMap) knows(a, b Node) bool { return slices.Contains(m.lists[a], b) }

// mermaid prints the who-knows-whom graph as a Mermaid flowchart in a
// Markdown fence: a <--> b when each lists the other, a --> b when only a
// lists b. Entries that did not answer are dashed.
func (m netMap) mermaid(w io.Writer) {
	nodes := m.sorted()
	id := map[Node]string{}
	fmt.Fprintln(w, "```mermaid\nflowchart LR")
	for i, n := range nodes {
		id[n] = fmt.Sprintf("n%d", i+1)
		if m.lists[n] != nil {
			fmt.Fprintf(w, "  %s[\"%s\"]\n", id[n], n)
		} else {
			fmt.Fprintf(w, "  %s[\"%s (no answer)\"]:::dead\n", id[n], n)
		}
	}
	for _, a := range nodes {
		list := slices.Clone(m.lists[a])
		slices.SortFunc(list, compareNodes)
		for _, b := range list {
			switch {
			case id[b] == "": // listed, but not visited: past -m
			case !m.knows(b, a):
				fmt.Fprintf(w, "  %s --> %s\n", id[a], id[b])
			case compareNodes(a, b) < 0:
				fmt.Fprintf(w, "  %s <--> %s\n", id[a], id[b])
			}
		}
	}
	fmt.Fprintln(w, "  classDef dead stroke-dasharray: 5 5\n```")
}

// summary is one line: processes reached, entries that did not answer,
// links and how many are mutual, connected components, and the in- and
// out-degree of the processes reached (min/median/max; the lower median).
func (m netMap) summary() string {
	in, component := mapDegrees(m)
	c := mapCountsOf(m, in, component)
	degrees := func(d [3]int) string { return fmt.Sprintf("%d/%d/%d", d[0], d[1], d[2]) }
	return fmt.Sprintf("processes reached: %d; entries that did not answer: %d; "+
		"links: %d, mutual: %d; components: %d; in-degree min/median/max: %s; out-degree: %s",
		c.Nodes, c.Dead, c.Links, c.Mutual, c.Components, degrees(c.InDegree), degrees(c.OutDegree))
}

// mapCounts is the summary's figures, with degrees as [min, median, max].
type mapCounts struct {
	Nodes      int    `json:"nodes"`      // processes that answered
	Dead       int    `json:"dead"`       // entries that did not answer
	Links      int    `json:"links"`      // entries listed by those that answered
	Mutual     int    `json:"mutual"`     // links whose target lists the lister back
	Components int    `json:"components"` // connected components of those that answered
	Unlisted   int    `json:"unlisted"`   // answered, no seed, listed by seeds only: new, refused
	InDegree   [3]int `json:"in_degree"`
	OutDegree  [3]int `json:"out_degree"`
}

// mapCountsOf is the summary's figures for m, given each entry's in-degree
// and each process's component; the unlisted are the page's (newMapView).
func mapCountsOf(m netMap, in, component map[Node]int) mapCounts {
	c := mapCounts{Nodes: len(m.lists), Dead: len(m.dead)}
	roots := map[int]bool{}
	var ins, outs []int
	for n, list := range m.lists {
		roots[component[n]] = true
		ins, outs = append(ins, in[n]), append(outs, len(list))
		c.Links += len(list)
		for _, l := range list {
			if m.knows(l, n) {
				c.Mutual++
			}
		}
	}
	c.Components = len(roots)
	c.InDegree, c.OutDegree = minMedianMax(ins), minMedianMax(outs)
	return c
}

// mapDegrees is, for every entry, how many processes that answered list
// it, and for every process that answered, its connected component,
// numbered in address order from 0: links count either way, as in the
// summary.
func mapDegrees(m netMap) (in, component map[Node]int) {
	in, component = map[Node]int{}, map[Node]int{}
	parent := map[Node]Node{}
	var find func(Node) Node
	find = func(n Node) Node {
		if p, ok := parent[n]; ok && p != n {
			parent[n] = find(p)
			return parent[n]
		}
		return n
	}
	for a, list := range m.lists {
		for _, b := range list {
			in[b]++
			if m.lists[b] != nil {
				parent[find(a)] = find(b)
			}
		}
	}
	number := map[Node]int{}
	for _, n := range m.sorted()[:len(m.lists)] { // those that answered come first
		root := find(n)
		if _, ok := number[root]; !ok {
			number[root] = len(number)
		}
		component[n] = number[root]
	}
	return in, component
}

// minMedianMax is the smallest, the lower median and the largest of xs.
func minMedianMax(xs []int) [3]int {
	if len(xs) == 0 {
		return [3]int{}
	}
	slices.Sort(xs)
	return [3]int{xs[0], xs[(len(xs)-1)/2], xs[len(xs)-1]}
}
