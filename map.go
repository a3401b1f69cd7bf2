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
// fails if no seed answered.
func runMap(ctx context.Context, cfg config, stdout io.Writer, log *slog.Logger) error {
	if cfg.web != "" {
		return runMapWeb(ctx, cfg, log) // mapweb.go: a live page instead
	}
	seeds, err := bootstrapSeeds(cfg)
	if err != nil {
		return err
	}
	m := crawl(ctx, newPeerClient(time.Duration(cfg.timeout), Node{}), seeds, cfg.max, cfg.hostMax)
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
// at a third party; it keeps at most maxSample entries of a list, even from
// a process that ignores ?sample. Each wave runs through forEach, so at
// most maxInFlight calls are open, each bounded by the client's timeout.
func crawl(ctx context.Context, c *peerClient, seeds []Node, max, hostMax int) netMap {
	m := netMap{lists: map[Node][]Node{}}
	seen := map[Node]bool{}
	perHost := map[string]int{}
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
		ok := forEach(ctx, wave, func(ctx context.Context, n Node) error {
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
				if !seen[l] && (l.loopback() || perHost[l.IP] < hostMax) {
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
	byIP := netip.MustParseAddr(a.IP).Compare(netip.MustParseAddr(b.IP))
	return cmp.Or(byIP, cmp.Compare(a.Port, b.Port))
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
	in, out := map[Node]int{}, map[Node]int{}
	links, mutual := 0, 0
	parent := map[Node]Node{} // union-find over the processes reached
	var find func(Node) Node
	find = func(n Node) Node {
		if p, ok := parent[n]; ok && p != n {
			parent[n] = find(p)
			return parent[n]
		}
		return n
	}
	for a, list := range m.lists {
		parent[a] = find(a)
		out[a] = len(list)
		for _, b := range list {
			links++
			if m.knows(b, a) {
				mutual++
			}
			if m.lists[b] != nil {
				in[b]++
				parent[find(a)] = find(b)
			}
		}
	}
	roots := map[Node]bool{}
	var ins, outs []int
	for n := range m.lists {
		roots[find(n)] = true
		ins, outs = append(ins, in[n]), append(outs, out[n])
	}
	return fmt.Sprintf("processes reached: %d; entries that did not answer: %d; "+
		"links: %d, mutual: %d; components: %d; in-degree min/median/max: %s; out-degree: %s",
		len(m.lists), len(m.dead), links, mutual, len(roots), spread(ins), spread(outs))
}

// spread is min/median/max of xs, the lower median for an even count.
func spread(xs []int) string {
	if len(xs) == 0 {
		return "0/0/0"
	}
	slices.Sort(xs)
	return fmt.Sprintf("%d/%d/%d", xs[0], xs[(len(xs)-1)/2], xs[len(xs)-1])
}
