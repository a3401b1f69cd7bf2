package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

var (
	errSelf     = errors.New("that is this process's own address; it never lists itself")
	errFull     = errors.New("the table is full (see -m)")
	errHostFull = errors.New("that address has as many entries as one address may have (see -hm)")
	errEnough   = errors.New("this node has as many peers as it takes; try others")
)

// Table is the set of known nodes, in the order learned, kept in memory and in
// one file. Every change is on disk before the call that made it returns, and
// changes that arrive while a write is under way share the next write. A
// table made by memTable has no file: the simulation uses those.
type Table struct {
	path    string
	self    Node
	max     int
	hostMax int // most entries with one address (-hm); loopback is exempt

	mu       sync.Mutex
	written  *sync.Cond // broadcast when a write ends
	lock     *os.File   // holds the lock on the data directory for the whole run
	nodes    []Node
	known    map[Node]bool
	perHost  map[netip.Addr]int
	inbound  map[Node]bool // nodes taken by their own announce, under a node's cap (AddUpTo)
	byGroup  map[netip.Prefix][]Node
	groups   []netip.Prefix // the keys of byGroup, for drawing one at random
	checkers map[Node]bool  // processes that checked us since the last TakeCheckers
	changes  uint64         // changes made in memory, counted from start
	saved    uint64         // changes on disk
	writing  bool           // a caller is writing the file; the others wait for it
	wrote    time.Time      // when the last write ended
	gap      time.Duration  // writeGap; tests of other things may shorten it
	writes   int            // files written since start

	body   atomic.Pointer[[]byte] // the bytes on disk, served by GET /nodes/
	public atomic.Pointer[[]byte] // the same less loopback and link-local entries, for other hosts
	rng    *rand.Rand             // for samples, under mu; seeded in the simulation
}

// openTable locks dir, removes temp files a crash may have left, and loads
// dir/file. A missing file is an empty table; an unreadable or corrupt one is
// an error and is left as it is.
func openTable(dir, file string, self Node, max, hostMax int) (*Table, error) {
	if err := writable(dir, file); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, file)
	lock, err := lockDir(dir, file)
	if errors.Is(err, errLocked) {
		return nil, fmt.Errorf("%s is in use by another process (%s is locked)", path, dir)
	} else if err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	t := memTable(self, max, hostMax)
	t.path, t.lock = path, lock
	if err := t.load(); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// memTable returns an empty table kept in memory only, with no file and no
// lock, so that a simulation can hold 10,000 of them without a disk.
func memTable(self Node, max, hostMax int) *Table {
	t := &Table{self: self, max: max, hostMax: hostMax, known: map[Node]bool{}, perHost: map[netip.Addr]int{}, checkers: map[Node]bool{}, inbound: map[Node]bool{}, byGroup: map[netip.Prefix][]Node{},
		rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())), gap: writeGap}
	t.written = sync.NewCond(&t.mu)
	return t
}

// insert adds n, which is not known, to memory. t.mu is held.
func (t *Table) insert(n Node) {
	t.known[n] = true
	t.nodes = append(t.nodes, n)
	g, _ := groupOf(n)
	if t.byGroup[g] == nil {
		t.groups = append(t.groups, g)
	}
	t.byGroup[g] = append(t.byGroup[g], n)
	if host, ok := hostOf(n); ok {
		t.perHost[host]++
	}
}

// publish makes body, the file's bytes for nodes, what GET /nodes/ serves,
// and nodes less scoped entries what it serves other hosts.
func (t *Table) publish(nodes []Node, body []byte) {
	public := body
	if pub := slices.DeleteFunc(slices.Clone(nodes), Node.scoped); len(pub) < len(nodes) {
		public = encodeNodes(pub)
	}
	t.body.Store(&body)
	t.public.Store(&public)
}

// List returns a copy of the nodes in memory, in the order learned.
func (t *Table) List() []Node {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.nodes)
}

// Len is the number of nodes in memory.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.nodes)
}

// Found is the number of nodes not taken by their own announce (AddUpTo):
// the peers a node found itself, and those loaded from disk.
func (t *Table) Found() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.nodes) - len(t.inbound)
}

// Has reports whether n is in the table.
func (t *Table) Has(n Node) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.known[n]
}

// Body is the JSON array on disk: what GET /nodes/ answers on this host.
func (t *Table) Body() []byte { return *t.bodies(&t.body) }

// PublicBody is Body less loopback and link-local entries: what GET /nodes/
// answers other hosts, to which those addresses mean something else.
func (t *Table) PublicBody() []byte { return *t.bodies(&t.public) }

// bodies returns which, encoding both bodies first if a table in memory only
// has changed since they were last asked for.
func (t *Table) bodies(which *atomic.Pointer[[]byte]) *[]byte {
	if b := which.Load(); b != nil {
		return b
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.publish(t.nodes, encodeNodes(t.nodes))
	return which.Load()
}

// Sample is at most n entries picked at random, as compact JSON; public
// leaves out loopback and link-local ones, as for another host. A joining
// node asks for a few, so that a join costs a few entries, not the table.
// Groups take turns (see balanced), so an allocation with a thousand
// entries is drawn no more often than one with a single entry.
func (t *Table) Sample(n int, public bool) []byte {
	t.mu.Lock()
	var picked []Node
	if 4*n >= len(t.nodes) { // a small table: take turns over all of it
		eligible := t.nodes
		if public {
			eligible = slices.DeleteFunc(slices.Clone(t.nodes), Node.scoped)
		}
		picked = balanced(eligible, n, t.rng)
	} else { // a large one: draw a group, then an entry, and redraw a repeat; O(n) expected
		chosen := map[Node]bool{}
		for tries := 0; len(picked) < n && tries < 16*n; tries++ {
			members := t.byGroup[t.groups[t.rng.IntN(len(t.groups))]]
			if m := members[t.rng.IntN(len(members))]; !chosen[m] && !(public && m.scoped()) {
				chosen[m] = true
				picked = append(picked, m)
			}
		}
	}
	t.mu.Unlock()
	body, _ := json.Marshal(picked) // outside the lock: encoding costs more than picking
	return append(body, '\n')
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
		if byGroup[groups[i]] = members[:len(members)-1]; len(members) == 1 {
			groups[i] = groups[len(groups)-1]
			groups = groups[:len(groups)-1]
		}
	}
	return picked
}

// maxCheckers bounds the processes CheckedBy remembers between two rounds.
const maxCheckers = 64

// CheckedBy notes that process n, by its own word (fromHeader) and from
// its own address, has just checked that we are alive: a seed that does so
// lists us, so there is no need to announce ourselves to it this round.
func (t *Table) CheckedBy(n Node) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.checkers) < maxCheckers {
		t.checkers[n] = true
	}
}

// TakeCheckers returns the processes that checked us since it was last called.
func (t *Table) TakeCheckers() map[Node]bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	checkers := t.checkers
	t.checkers = map[Node]bool{}
	return checkers
}

// inboundCap is how many peers a node takes by their announce before it
// refuses new ones: 2 x -k, so that early joiners do not become hubs. The
// peers it finds itself do not count. The seed (0) takes every node, up to -m.
func inboundCap(cfg config) int {
	if cfg.role == "node" {
		return 2 * max(cfg.enough, 1)
	}
	return 0
}

// Add adds the nodes it does not know yet and returns those it added, once
// the table it leaves is on disk. It returns errSelf, errFull or errHostFull
// if it had to skip a node for that reason.
func (t *Table) Add(nodes ...Node) ([]Node, error) { return t.AddUpTo(0, nodes...) }

// AddUpTo is Add for the peers a node takes by their announce: it counts
// them, and stops at inbound of them (0: no cap but -m) with errEnough. The
// cap is held under the same lock as the add, so that concurrent announces
// cannot pass it. The peers a node finds itself do not count against it.
func (t *Table) AddUpTo(inbound int, nodes ...Node) ([]Node, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var skipped error
	var added []Node
	for _, n := range nodes {
		switch {
		case n == t.self:
			skipped = errSelf
		case t.known[n]:
		default:
			victim, err := t.room(inbound, n)
			if err != nil {
				skipped = err
				continue
			}
			if victim != (Node{}) {
				t.drop(map[Node]bool{victim: true})
			}
			t.insert(n)
			added = append(added, n)
			if inbound > 0 {
				t.inbound[n] = true
			}
		}
	}
	if len(added) > 0 {
		t.changes++
	}
	// Wait even if nothing changed: a node found here may still be on its way to disk.
	return added, cmp.Or(t.save(t.changes), skipped)
}

// Remove removes the given nodes and returns those it removed, once the
// table it leaves is on disk.
func (t *Table) Remove(nodes ...Node) ([]Node, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	gone := map[Node]bool{}
	var removed []Node
	for _, n := range nodes {
		if t.known[n] && !gone[n] {
			gone[n] = true
			removed = append(removed, n)
		}
	}
	if len(gone) > 0 {
		t.drop(gone)
	}
	return removed, t.save(t.changes)
}

// drop removes the nodes in gone, all known, from memory, in one pass over
// the table and one over each group they were in: a sweep may remove
// thousands at once. t.mu is held.
func (t *Table) drop(gone map[Node]bool) {
	touched := map[netip.Prefix]bool{}
	for n := range gone {
		delete(t.known, n)
		delete(t.inbound, n)
		if host, ok := hostOf(n); ok {
			t.perHost[host]--
		}
		g, _ := groupOf(n)
		touched[g] = true
	}
	for g := range touched {
		if t.byGroup[g] = slices.DeleteFunc(t.byGroup[g], func(m Node) bool { return gone[m] }); len(t.byGroup[g]) == 0 {
			delete(t.byGroup, g)
		}
	}
	t.groups = slices.DeleteFunc(t.groups, func(g netip.Prefix) bool { return touched[g] && t.byGroup[g] == nil })
	t.nodes = slices.DeleteFunc(t.nodes, func(m Node) bool { return gone[m] })
	t.changes++
}
