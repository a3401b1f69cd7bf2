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
)

var (
	errSelf     = errors.New("that is this process's own address; it never lists itself")
	errFull     = errors.New("the table is full (see -m)")
	errHostFull = errors.New("that host has as many entries as one host may have (see -hm)")
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
	hostMax int // most entries from one host (IPv4 address, IPv6 /64); loopback is exempt

	mu      sync.Mutex
	written *sync.Cond // broadcast when a write ends
	lock    *os.File   // holds the lock on the data directory for the whole run
	nodes   []Node
	known   map[Node]bool
	perHost map[netip.Prefix]int
	inbound map[Node]bool // nodes taken by their own announce, under a node's cap (AddUpTo)
	heard   map[Node]bool // nodes that called us themselves since the last TakeHeard
	changes uint64        // changes made in memory, counted from start
	saved   uint64        // changes on disk
	writing bool          // a caller is writing the file; the others wait for it

	body   atomic.Pointer[[]byte] // the bytes on disk, served by GET /nodes/
	public atomic.Pointer[[]byte] // the same less loopback and link-local entries, for other hosts
	rng    *rand.Rand             // for samples, under mu; seeded in the simulation
}

// openTable locks dir, removes temp files a crash may have left, and loads
// dir/file. A missing file is an empty table; an unreadable or corrupt one is
// an error and is left as it is.
func openTable(dir, file string, self Node, max, hostMax int) (*Table, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
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
	t := &Table{self: self, max: max, hostMax: hostMax, known: map[Node]bool{}, perHost: map[netip.Prefix]int{}, heard: map[Node]bool{}, inbound: map[Node]bool{},
		rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}
	t.written = sync.NewCond(&t.mu)
	return t
}

// hostOf is the host a node counts against for -hm: its IPv4 address or its
// IPv6 /64. Loopback nodes count against no host (ok is false), so networks
// on one machine are not capped.
func hostOf(n Node) (host netip.Prefix, ok bool) {
	ip := netip.MustParseAddr(n.IP)
	if ip.IsLoopback() {
		return netip.Prefix{}, false
	}
	if ip.Is4() {
		return netip.PrefixFrom(ip, 32), true
	}
	host, _ = ip.Prefix(64)
	return host, true
}

// Full returns errFull, errEnough or errHostFull if n, were it new, would
// be refused by AddUpTo(limit, n) for that reason, so that callers can
// refuse it before any work.
func (t *Table) Full(limit int, n Node) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.full(limit, n)
}

// full is Full with t.mu held.
func (t *Table) full(limit int, n Node) error {
	if len(t.nodes) >= t.max {
		return errFull
	}
	if limit > 0 && len(t.inbound) >= limit {
		return errEnough
	}
	if host, ok := hostOf(n); ok && t.perHost[host] >= t.hostMax {
		return errHostFull
	}
	return nil
}

// insert adds n, which is not known, to memory. t.mu is held.
func (t *Table) insert(n Node) {
	t.known[n] = true
	t.nodes = append(t.nodes, n)
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
func (t *Table) Sample(n int, public bool) []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	eligible := func(m Node) bool { return !public || !m.scoped() }
	picked := []Node{}
	if 2*n >= len(t.nodes) { // a small table: shuffle it all
		for _, i := range t.rng.Perm(len(t.nodes)) {
			if m := t.nodes[i]; len(picked) < n && eligible(m) {
				picked = append(picked, m)
			}
		}
	} else { // a large one: draw, in O(n)
		chosen := map[int]bool{}
		for tries := 0; len(picked) < n && tries < 4*n; tries++ {
			i := t.rng.IntN(len(t.nodes))
			if m := t.nodes[i]; !chosen[i] && eligible(m) {
				picked = append(picked, m)
			}
			chosen[i] = true
		}
	}
	body, _ := json.Marshal(picked)
	return append(body, '\n')
}

// Heard notes that n, a known node, has just called us itself: a check of it
// in this round would tell nothing new.
func (t *Table) Heard(n Node) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.known[n] {
		t.heard[n] = true
	}
}

// TakeHeard returns the nodes heard from since it was last called.
func (t *Table) TakeHeard() map[Node]bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	heard := t.heard
	t.heard = map[Node]bool{}
	return heard
}

// Add adds the nodes it does not know yet and returns those it added, once
// the table it leaves is on disk. It returns errSelf, errFull or errHostFull
// if it had to skip a node for that reason.
func (t *Table) Add(nodes ...Node) ([]Node, error) { return t.AddUpTo(0, nodes...) }

// AddUpTo is Add for the peers a node takes by their announce: it counts
// them, and stops at limit of them (0: no limit but -m) with errEnough. The
// cap is held under the same lock as the add, so that concurrent announces
// cannot pass it. The peers a node finds itself do not count against it.
func (t *Table) AddUpTo(limit int, nodes ...Node) ([]Node, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var skipped error
	var added []Node
	for _, n := range nodes {
		switch {
		case n == t.self:
			skipped = errSelf
		case t.known[n]:
		case t.full(limit, n) != nil:
			skipped = t.full(limit, n)
		default:
			t.insert(n)
			added = append(added, n)
			if limit > 0 {
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
		if t.known[n] {
			gone[n] = true
			removed = append(removed, n)
			delete(t.known, n)
			delete(t.inbound, n)
			if host, ok := hostOf(n); ok {
				t.perHost[host]--
			}
		}
	}
	if len(gone) > 0 {
		t.nodes = slices.DeleteFunc(t.nodes, func(n Node) bool { return gone[n] })
		t.changes++
	}
	return removed, t.save(t.changes)
}
