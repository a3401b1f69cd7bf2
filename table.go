package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
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
	errSelf = errors.New("that is this process's own address; it never lists itself")
	errFull = errors.New("the table is full (see -m)")
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

	mu         sync.Mutex
	written    *sync.Cond // broadcast when a write ends
	lock       *os.File   // holds the lock on the data directory for the whole run
	nodes      []Node
	known      map[Node]bool
	groups     groupIndex    // the entries by address group and by address (groups.go)
	inbound    map[Node]bool // nodes taken by their own announce, under a node's cap (hubs.go)
	byAnnounce groupIndex    // those by group, for room at a node (room.go)
	foothold   Node          // a full peer taken while alone, let go at -k (hubs.go), while it stays
	failing    map[Node]bool // entries whose last check failed: in no sample (SetFailing)
	changes    uint64        // changes made in memory, counted from start
	saved      uint64        // changes on disk
	writing    bool          // a caller is writing the file; the others wait for it
	wrote      time.Time     // when the last write ended
	gap        time.Duration // writeGap; tests of other things may shorten it
	writes     int           // files written since start

	body   atomic.Pointer[[]byte] // the bytes on disk, served by GET /nodes/
	public atomic.Pointer[[]byte] // the same less loopback and link-local entries, for other hosts
	rng    *rand.Rand             // for samples and room, under mu; seeded in the simulation

	checkedBy   callers // the processes that checked us lately, noted by the API (checkedby.go)
	announcedBy callers // the peers that announced themselves lately, noted by the API (notnode.go)
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
	t := &Table{
		self:       self,
		max:        max,
		hostMax:    hostMax,
		known:      map[Node]bool{},
		groups:     newGroupIndex(),
		inbound:    map[Node]bool{},
		byAnnounce: newGroupIndex(),
		rng:        rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		gap:        writeGap,
	}
	t.written = sync.NewCond(&t.mu)
	return t
}

// insert adds n, which is not known, to memory. t.mu is held.
func (t *Table) insert(n Node) {
	t.known[n] = true
	t.nodes = append(t.nodes, n)
	t.groups.add(n)
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

// Outbound is the number of nodes not taken by their own announce
// (AddAnnounced): the peers a node chose itself, and those loaded from disk.
func (t *Table) Outbound() int {
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
// Groups take turns (groups.go), so an allocation with a thousand entries
// is drawn no more often than one with a single entry. An entry whose last
// check failed is given to nobody until it answers again: it stays only
// while the timeouts' cap keeps it, and sends nobody to a hung address
// meanwhile.
func (t *Table) Sample(n int, public bool) []byte {
	skip := func(m Node) bool { return public && m.scoped() || t.failing[m] }
	t.mu.Lock()
	picked := t.groups.sample(t.nodes, n, skip, t.rng)
	t.mu.Unlock()
	if len(picked) == 0 {
		return []byte("[]\n") // a node answers with an array, if an empty one: never null
	}
	body, _ := json.Marshal(picked) // outside the lock: encoding costs more than picking
	return append(body, '\n')
}

// Add adds the nodes it does not know yet and returns those it added, once
// the table it leaves is on disk. A full table makes room by group, and may
// evict an entry for a newcomer (room.go). It returns errSelf, errFull,
// errHostFull or a *crowdedError if it had to skip a node for that reason.
func (t *Table) Add(nodes ...Node) ([]Node, error) { return t.AddAnnounced(0, nodes...) }

// AddAnnounced is Add for nodes that announced themselves: a node counts
// them, and at maxInbound of them refuses with errEnough, unless a group of
// them gives way (hubs.go, room.go); the seed (0) has no such cap. The cap
// is held under the same lock as the add, so that concurrent announces
// cannot pass it. The peers a node finds itself do not count against it.
func (t *Table) AddAnnounced(maxInbound int, nodes ...Node) ([]Node, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.add(maxInbound, nodes)
}

// Replace adds n in the place of old, an incumbent that failed its check
// (room.go), in one change: if n cannot come in (it is known, or its
// address has -hm entries), old stays, for the sweep to remove.
func (t *Table) Replace(old, n Node) ([]Node, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.known[old] && !t.known[n] && n != t.self && !t.groups.hostFull(n, t.hostMax) {
		t.drop(map[Node]bool{old: true})
	}
	return t.add(0, []Node{n})
}

// add is AddAnnounced with t.mu held.
func (t *Table) add(maxInbound int, nodes []Node) ([]Node, error) {
	added, skipped := t.addInMemory(maxInbound, nodes)
	// Wait even if nothing changed: a node found here may still be on its way to disk.
	return added, cmp.Or(t.save(t.changes), skipped)
}

// addInMemory is add without the write: the nodes it added, and why it skipped any.
// t.mu is held.
func (t *Table) addInMemory(maxInbound int, nodes []Node) (added []Node, skipped error) {
	for _, n := range nodes {
		switch {
		case n == t.self:
			skipped = errSelf
		case t.known[n]:
		default:
			victim, err := t.roomFor(maxInbound, n)
			if err != nil {
				skipped = err
				continue
			}
			if victim != (Node{}) {
				t.drop(map[Node]bool{victim: true})
			}
			t.insert(n)
			added = append(added, n)
			if maxInbound > 0 {
				t.inbound[n] = true
				t.byAnnounce.add(n)
			}
		}
	}
	if len(added) > 0 {
		t.changes++
	}
	return added, skipped
}

// AddFoothold adds n as the foothold: a full peer, taken by a node that
// knows none, to let go once it has found -k others (hubs.go). It is the
// foothold from the change that adds it, so that a goodbye that removes it
// meanwhile forgets it too.
func (t *Table) AddFoothold(n Node) ([]Node, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	added, skipped := t.addInMemory(0, []Node{n})
	if len(added) > 0 {
		t.foothold = n
	}
	return added, cmp.Or(t.save(t.changes), skipped)
}

// Foothold is the foothold, if it is in the table.
func (t *Table) Foothold() (Node, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.foothold, t.foothold != Node{}
}

// Remove removes the given nodes and returns those it removed, once the
// table it leaves is on disk. Every way an entry leaves a table comes
// through here, through room in Add and AddAnnounced, through Replace, or
// through load at start:
//   - it failed -f checks in a row: no answer, a refusal of the connection,
//     or an answer that no node gives (sweep, refresh.go; notnode.go);
//     timeouts remove at most 1 in timeoutShare a round;
//   - a DELETE: the operator's at once, another host's once checksToLeave
//     checks in a row fail (handleRemove, silence.go), such as a leaving
//     node's goodbye;
//   - at a node at -k, the foothold let go; a random peer swapped for a
//     fresh candidate when none of its peers came by announce (atLimit,
//     node.go; hubs.go); or a peer that acted as no node and lists nobody
//     giving up its place to a candidate of another group (askIdle, node.go;
//     notnode.go);
//   - in a full table, a largest group's entry makes room for a newcomer of a
//     smaller group (room), or an incumbent that failed its check for one of
//     its own group (testBeforeEvict, room.go, and Replace);
//   - at start, the file's entries for this process itself, and repeats (load).
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
// the table: a sweep may remove thousands at once. t.mu is held.
func (t *Table) drop(gone map[Node]bool) {
	announced := map[Node]bool{}
	for n := range gone {
		delete(t.known, n)
		if t.inbound[n] {
			announced[n] = true
			delete(t.inbound, n)
		}
	}
	t.byAnnounce.drop(announced)
	if gone[t.foothold] {
		t.foothold = Node{} // forgotten: if it comes back, it is an ordinary peer
	}
	t.groups.drop(gone)
	for n := range gone {
		delete(t.failing, n)
	}
	t.nodes = slices.DeleteFunc(t.nodes, func(m Node) bool { return gone[m] })
	t.changes++
}

// WouldRefuse returns why AddAnnounced(maxInbound, n) would refuse n, were
// it new, so that callers can refuse it before any work: errFull,
// errEnough or errHostFull, or a *crowdedError, whose incumbent must fail
// a check to make room. nil means there is room, or room can be made.
func (t *Table) WouldRefuse(maxInbound int, n Node) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, err := t.roomFor(maxInbound, n)
	return err
}

// roomFor asks the rules whether n, new, may come in: -hm (groups.go),
// then room by diversity (room.go), which may name a victim to make room
// for n. t.mu is held.
func (t *Table) roomFor(maxInbound int, n Node) (victim Node, err error) {
	if t.groups.hostFull(n, t.hostMax) {
		return Node{}, errHostFull
	}
	s := roomState{entries: len(t.nodes), inbound: len(t.inbound), max: t.max, maxInbound: maxInbound,
		byGroup: t.byGroup}
	return room(s, n, t.rng)
}

// byGroup is the entries by group, or only those a node took by their
// announce, from the indexes. t.mu is held.
func (t *Table) byGroup(announced bool) map[netip.Prefix][]Node {
	if announced {
		return t.byAnnounce.members
	}
	return t.groups.members
}

// SetFailing makes failing the entries whose last check failed, which
// samples leave out until they answer again (refresher.sweep).
func (t *Table) SetFailing(failing map[Node]int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failing = map[Node]bool{}
	for n := range failing {
		if t.known[n] {
			t.failing[n] = true
		}
	}
}

// Close releases the lock. The table must not be used after.
func (t *Table) Close() error {
	if t.lock == nil {
		return nil
	}
	return t.lock.Close() // closing the descriptor releases the lock
}

// load reads the file into an empty table and rewrites it if the table it
// gives differs from its bytes (duplicates, this process itself, another layout).
func (t *Table) load() error {
	temps, _ := filepath.Glob(t.path + ".tmp-*")
	for _, tmp := range temps {
		os.Remove(tmp) // an unfinished write from a crash; the file itself is intact
	}
	data, err := os.ReadFile(t.path) // nil if missing
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if data != nil {
		nodes, err := parseNodes(data, t.max+1) // one more: the file may list this process
		if errors.Is(err, errTooMany) {
			return fmt.Errorf("%s holds more than -m %d nodes: raise -m", t.path, t.max)
		} else if err != nil {
			return fmt.Errorf("%s: %w; fix or remove the file", t.path, err)
		}
		for _, n := range nodes {
			if n != t.self && !t.known[n] {
				t.insert(n)
			}
		}
		if len(t.nodes) > t.max {
			return fmt.Errorf("%s holds %d nodes, more than -m %d: raise -m", t.path, len(t.nodes), t.max)
		}
	}
	body := encodeNodes(t.nodes)
	t.publish(t.nodes, body)
	if !bytes.Equal(body, data) {
		return writeFile(t.path, body)
	}
	return nil
}

// recreate makes the data directory again after someone removed it, and
// locks the new one. Only the caller writing the file calls it.
func (t *Table) recreate() error {
	dir := filepath.Dir(t.path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	lock, err := lockDir(dir, filepath.Base(t.path))
	if err != nil {
		return err
	}
	t.lock.Close()
	t.lock = lock
	return nil
}

// save returns once change number upTo is on disk. The first caller to find no
// write under way writes everything changed so far, after waiting out
// writeGap since the last write; callers arriving meanwhile wait, and the
// next of them writes all their changes at once (group commit). t.mu is
// held on entry and exit, and released while waiting and writing.
func (t *Table) save(upTo uint64) error {
	for t.saved < upTo {
		if t.path == "" { // in memory only: nothing to write; encode when asked
			t.saved = t.changes
			t.body.Store(nil)
			t.public.Store(nil)
			return nil
		}
		if t.writing {
			t.written.Wait()
			continue
		}
		t.writing = true
		if wait := t.gap - time.Since(t.wrote); wait > 0 {
			// Coalesce: whatever changes meanwhile goes in this one write.
			t.mu.Unlock()
			time.Sleep(wait)
			t.mu.Lock()
		}
		batch, nodes := t.changes, slices.Clone(t.nodes)
		t.mu.Unlock()
		body := encodeNodes(nodes)
		err := writeFile(t.path, body)
		if errors.Is(err, fs.ErrNotExist) {
			if err = t.recreate(); err == nil {
				err = writeFile(t.path, body)
			}
		}
		t.mu.Lock()
		t.writing = false
		t.wrote, t.writes = time.Now(), t.writes+1
		t.written.Broadcast()
		if err != nil {
			return fmt.Errorf("save %s: %w", t.path, err)
		}
		t.saved = batch
		t.publish(nodes, body)
	}
	return nil
}
