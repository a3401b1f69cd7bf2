package main

// The address book: one record per peer, with everything this process
// knows of it, kept in memory and, for the entries, in one file. It does
// no networking: the rounds and the handlers tell it what happened (a
// check's outcome, an announce, a refusal) and ask it what to do (admit
// this newcomer, whom to check, whom to remove). Every change is on disk
// before the call that made it returns, and changes that arrive while a
// write is under way share the next write. A table made by memTable has
// no file: the simulation uses those.

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
	errLeft = errors.New("it left the table while its announce was handled; announce again")
)

// source is how an entry came in.
type source uint8

const (
	found     source = iota // a node picked it, or loaded it; any entry of a seed's; the operator's adds
	announced               // it announced itself to a node, which counts it against its cap (hubs.go)
	foothold                // a full peer taken while alone, let go at -k (hubs.go)
	seed                    // a node's seed: known, never an entry
)

// peer is the record of one peer: an entry of the table, or a node's seed.
type peer struct {
	Node
	came        source
	fails       int        // failed checks in a row; an entry that failed its last is in no sample
	answered    time.Time  // its last answer to a check a DELETE from elsewhere may rest on (silence.go)
	ownAnswered time.Time  // its last answer to a check that a DELETE from its own address asked for
	retryAt     int        // the round from which an announce to it is tried again (backoff.go)
	backoff     int        // the rounds the last refusal made it wait
	shunnedTo   int        // the round before which it is taken from no list: it answered not as a node
	checkedUs   bool       // it checked us since our last round: a seed that lists us (checkedby.go)
	saw         netip.Addr // the address it says our calls come from (nat.go)
	added       uint64     // the change that made it an entry: on disk once saved reaches it
}

// Table is the address book of one process.
type Table struct {
	path    string
	self    Node
	max     int
	hostMax int              // most entries with one address (-hm); loopback is exempt
	now     func() time.Time // time.Now; the simulation's clock moves a round at a time
	rng     *rand.Rand       // for samples and room, under mu; seeded in the simulation

	mu         sync.Mutex
	written    *sync.Cond // broadcast when a write ends
	lock       *os.File   // holds the lock on the data directory for the whole run
	entries    []*peer    // in the order learned, as the file lists them
	byNode     map[Node]*peer
	seeds      []*peer                  // a node's seeds: records, not entries
	groups     map[netip.Prefix][]*peer // the entries by address group (groups.go)
	groupOrder []netip.Prefix           // the keys of groups, for drawing one at random
	candidates map[Node]*peer           // candidates, not entries, that were shunned or refused us lately
	round      int                      // the rounds this process has run
	lateLeft   int                      // removals that timeouts may still make until the next round
	changes    uint64                   // changes made in memory, counted from start
	saved      uint64                   // changes on disk
	writing    bool                     // a caller is writing the file; the others wait for it
	wrote      time.Time                // when the last write ended
	cost       time.Duration            // how long the last write took (save)

	served atomic.Pointer[[anyHost + 1][]byte] // what GET /nodes/ serves, by audience: to this host, the file
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
		self: self, max: max, hostMax: hostMax, now: time.Now,
		rng:    rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		byNode: map[Node]*peer{}, groups: map[netip.Prefix][]*peer{}, candidates: map[Node]*peer{},
	}
	t.written = sync.NewCond(&t.mu)
	return t
}

// insert adds n, which is not known, to memory as came says, with what it
// knew of n as a candidate, and counts the change. t.mu is held.
func (t *Table) insert(n Node, came source) *peer {
	p := t.candidates[n]
	if p == nil {
		p = &peer{Node: n}
	}
	delete(t.candidates, n)
	t.changes++
	p.came, p.added = came, t.changes
	t.entries = append(t.entries, p)
	t.byNode[n] = p
	g, _ := groupOf(n)
	if t.groups[g] == nil {
		t.groupOrder = append(t.groupOrder, g)
	}
	t.groups[g] = append(t.groups[g], p)
	return p
}

// nodes is the entries' addresses, in the order learned. t.mu is held.
func (t *Table) nodes() []Node {
	nodes := make([]Node, len(t.entries))
	for i, p := range t.entries {
		nodes[i] = p.Node
	}
	return nodes
}

// List returns the entries, in the order learned.
func (t *Table) List() []Node {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.nodes()
}

// Len is the number of entries.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.entries)
}

// Failing is how many entries failed their last check, and are kept.
func (t *Table) Failing() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, p := range t.entries {
		if p.fails > 0 {
			n++
		}
	}
	return n
}

// Has reports whether n is an entry.
func (t *Table) Has(n Node) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byNode[n] != nil
}

// Outbound is the number of entries that did not come by their own
// announce: the peers a node chose itself, and those loaded from disk.
func (t *Table) Outbound() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	outbound := 0
	for _, p := range t.entries {
		if p.came != announced {
			outbound++
		}
	}
	return outbound
}

// announcedByGroup is the entries taken by their own announce, by group:
// what room at a node weighs (room.go). t.mu is held.
func (t *Table) announcedByGroup() map[netip.Prefix][]*peer {
	byGroup := map[netip.Prefix][]*peer{}
	for _, p := range t.entries {
		if p.came == announced {
			g, _ := groupOf(p.Node)
			byGroup[g] = append(byGroup[g], p)
		}
	}
	return byGroup
}

// Body is the JSON array on disk: what GET /nodes/ answers on this host.
func (t *Table) Body() []byte { return t.BodyFor(thisHost) }

// BodyFor is what GET /nodes/ answers to: Body less the entries to may not
// take from us (audience.gets).
func (t *Table) BodyFor(to audience) []byte {
	if b := t.served.Load(); b != nil {
		return b[to]
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	nodes := t.nodes()
	t.publish(nodes, encodeNodes(nodes)) // a table in memory only changed since last asked
	return t.served.Load()[to]
}

// publish makes body, the file's bytes for nodes, what GET /nodes/ serves
// this host, and encodes what it serves the others.
func (t *Table) publish(nodes []Node, body []byte) {
	var served [anyHost + 1][]byte
	served[thisHost] = body
	for to := privateNet; to <= anyHost; to++ { // each gets less than the one before
		served[to] = served[to-1]
		kept := slices.DeleteFunc(slices.Clone(nodes), func(n Node) bool { return !to.gets(n) })
		if len(kept) < len(nodes) {
			nodes, served[to] = kept, encodeNodes(kept)
		}
	}
	t.served.Store(&served)
}

// Sample is at most n entries picked at random, as compact JSON, of those
// that to may take from us. A joining node asks for a few, so that a join
// costs a few entries, not the table. Groups take turns (groups.go), so
// an allocation with a thousand entries is drawn no more often than one
// with a single entry. An entry whose last check failed is given to nobody
// until it answers again: it stays only while the timeouts' cap keeps it,
// and sends nobody to a hung address meanwhile.
func (t *Table) Sample(n int, to audience) []byte {
	skip := func(p *peer) bool { return !to.gets(p.Node) || p.fails > 0 }
	t.mu.Lock()
	picked := t.sample(n, skip)
	t.mu.Unlock()
	if len(picked) == 0 {
		return []byte("[]\n") // a node answers with an array, if an empty one: never null
	}
	body, _ := json.Marshal(picked) // outside the lock: encoding costs more than picking
	return append(body, '\n')
}

// sample picks at most n entries but those skip names, with groups taking
// turns. A small table is drawn whole (balanced); from a large one a
// group is drawn, then an entry in it, and a repeat is drawn again: O(n)
// expected. t.mu is held.
func (t *Table) sample(n int, skip func(*peer) bool) []Node {
	if smallSample*n >= len(t.entries) {
		var eligible []Node
		for _, p := range t.entries {
			if !skip(p) {
				eligible = append(eligible, p.Node)
			}
		}
		return balanced(eligible, n, t.rng)
	}
	var picked []Node
	chosen := map[*peer]bool{}
	for try := 0; len(picked) < n && try < sampleTries*n; try++ {
		members := t.groups[t.groupOrder[t.rng.IntN(len(t.groupOrder))]]
		p := members[t.rng.IntN(len(members))]
		if !chosen[p] && !skip(p) {
			chosen[p] = true
			picked = append(picked, p.Node)
		}
	}
	return picked
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
	came := found
	if maxInbound > 0 {
		came = announced
	}
	return t.add(maxInbound, came, nodes...)
}

// AddFoothold adds n as the foothold: a full peer, taken by a node that
// knows none, to let go once it has found -k others (hubs.go).
func (t *Table) AddFoothold(n Node) ([]Node, error) { return t.add(0, foothold, n) }

// add adds the nodes, as came says, and waits until they are on disk.
func (t *Table) add(maxInbound int, came source, nodes ...Node) ([]Node, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	added, skipped := t.insertNew(maxInbound, came, nodes)
	// Wait even if nothing changed: a node found here may still be on its way to disk.
	return added, cmp.Or(t.save(t.changes), skipped)
}

// insertNew puts in memory those of nodes that are new and that the rules
// let in (roomFor), as came says, and returns them, and why it skipped
// one if it did. t.mu is held.
func (t *Table) insertNew(maxInbound int, came source, nodes []Node) (added []Node, skipped error) {
	for _, n := range nodes {
		switch {
		case n == t.self:
			skipped = errSelf
		case t.byNode[n] != nil:
		default:
			victim, err := t.roomFor(maxInbound, n)
			if err != nil {
				skipped = err
				continue
			}
			if victim != nil {
				t.drop(victim) // room by diversity (room.go)
			}
			t.insert(n, came)
			added = append(added, n)
		}
	}
	return added, skipped
}

// Replace adds n in the place of old, a seed's incumbent that failed its
// check (room.go), in one change. If n's address has -hm entries, old
// stays, for the sweep to remove. n comes in by the rules of any add: into
// the room old leaves, or, if old left meanwhile, as room allows.
func (t *Table) Replace(old, n Node) ([]Node, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.byNode[old]; p != nil && t.byNode[n] == nil && n != t.self {
		if t.hostFull(n) {
			return nil, errHostFull
		}
		t.drop(p)
	}
	added, skipped := t.insertNew(0, found, []Node{n})
	return added, cmp.Or(t.save(t.changes), skipped)
}

// Keep waits until n, an entry when its announce came, is on disk, and
// returns errLeft if it left meanwhile: a known node's announce adds
// nothing, and so brings back no entry unchecked. It waits for no write
// but the one that takes n to disk, if n is not there yet.
func (t *Table) Keep(n Node) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.byNode[n]
	if p == nil {
		return errLeft
	}
	added := p.added
	if err := t.save(added); err != nil {
		return err
	}
	if t.byNode[n] != p || p.added != added { // left meanwhile, and maybe came back, unsaved
		return errLeft
	}
	return nil
}

// Foothold is the foothold, if there is one.
func (t *Table) Foothold() (Node, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range t.entries {
		if p.came == foothold {
			return p.Node, true
		}
	}
	return Node{}, false
}

// Remove removes the given nodes and returns those it removed, once the
// table it leaves is on disk (drop lists why an entry leaves).
func (t *Table) Remove(nodes ...Node) ([]Node, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var removed []Node
	var gone []*peer
	named := map[Node]bool{}
	for _, n := range nodes {
		if p := t.byNode[n]; p != nil && !named[n] {
			named[n] = true
			gone = append(gone, p)
			removed = append(removed, n)
		}
	}
	if len(gone) > 0 {
		t.drop(gone...)
	}
	return removed, t.save(t.changes)
}

// drop is the one exit of an entry: it forgets the indexes of gone's
// entries, in one pass however many leave, and their records but for a
// shun, which outlives an entry in the candidates' cache.
// An entry leaves for one of these reasons:
//   - it failed -f checks in a row: no answer, a refusal of the connection,
//     or an answer that no node gives (Table.Checked, then Remove); timeouts
//     remove at most 1 in timeoutShare a round;
//   - a DELETE: the operator's at once, another host's once checksToLeave
//     checks in a row fail (handleRemove, silence.go), such as a leaving
//     node's goodbye;
//   - at a node at -k, the foothold let go, or a random peer swapped for a
//     fresh candidate when none of its peers came by announce (atLimit,
//     node.go);
//   - in a full table, a largest group's entry makes room for a newcomer of
//     a smaller group (room, in add), or an incumbent that failed its check
//     for one of its own group (Replace).
//
// At start, load leaves out the file's entries for this process itself,
// and repeats, before anything else sees them. t.mu is held.
func (t *Table) drop(gone ...*peer) {
	leaves := func(q *peer) bool { return q == gone[0] }
	if len(gone) > 1 {
		set := map[*peer]bool{}
		for _, p := range gone {
			set[p] = true
		}
		leaves = func(q *peer) bool { return set[q] }
	}
	t.entries = slices.DeleteFunc(t.entries, leaves)
	groups := map[netip.Prefix]bool{}
	for _, p := range gone {
		delete(t.byNode, p.Node)
		g, _ := groupOf(p.Node)
		groups[g] = true
		if t.round < p.shunnedTo && len(t.candidates) < maxCandidates {
			p.came, p.fails = found, 0
			t.candidates[p.Node] = p // it answered not as a node: the shun outlives the entry (notnode.go)
		}
		t.changes++
	}
	emptied := false
	for g := range groups {
		if t.groups[g] = slices.DeleteFunc(t.groups[g], leaves); len(t.groups[g]) == 0 {
			delete(t.groups, g)
			emptied = true
		}
	}
	if emptied {
		t.groupOrder = slices.DeleteFunc(t.groupOrder, func(g netip.Prefix) bool { return t.groups[g] == nil })
	}
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

// roomFor asks the rules whether n, new, may come in: -hm, then room by
// diversity (room.go), which may name a victim to make room for n. A node
// weighs only the entries taken by announce; a seed, every entry. t.mu is
// held.
func (t *Table) roomFor(maxInbound int, n Node) (victim *peer, err error) {
	if t.hostFull(n) {
		return nil, errHostFull
	}
	byGroup, inbound := t.groups, 0
	if maxInbound > 0 {
		byGroup = t.announcedByGroup()
		for _, members := range byGroup {
			inbound += len(members)
		}
	}
	s := roomState{entries: len(t.entries), inbound: inbound, max: t.max, maxInbound: maxInbound,
		byGroup: byGroup}
	return room(s, n, t.rng)
}

// hostFull reports whether n's address has -hm entries already, counted
// in n's group, which holds every entry of that address. t.mu is held.
func (t *Table) hostFull(n Node) bool {
	host, ok := hostOf(n)
	if !ok {
		return false
	}
	g, _ := groupOf(n)
	count := 0
	for _, p := range t.groups[g] {
		if p.IP == host {
			count++
		}
	}
	return count >= t.hostMax
}

// record is n's record, an entry's, a seed's or a candidate's, or nil.
// t.mu is held.
func (t *Table) record(n Node) *peer {
	if p := t.byNode[n]; p != nil {
		return p
	}
	for _, p := range t.seeds {
		if p.Node == n {
			return p
		}
	}
	return t.candidates[n]
}

// candidate is n's record, made if there is none: a candidate's, kept in
// a cache of at most maxCandidates, which forgets the records that say
// nothing any more; nil if the cache is full of records that still do.
// t.mu is held.
func (t *Table) candidate(n Node) *peer {
	if p := t.record(n); p != nil {
		return p
	}
	if len(t.candidates) >= maxCandidates {
		t.forgetCandidates()
	}
	if len(t.candidates) >= maxCandidates {
		return nil
	}
	p := &peer{Node: n}
	t.candidates[n] = p
	return p
}

// forgetCandidates forgets the candidates' records that say nothing in
// this round: shunned no more, and refused us before it. t.mu is held.
func (t *Table) forgetCandidates() {
	for n, p := range t.candidates {
		if t.round >= p.shunnedTo && t.round >= p.retryAt {
			delete(t.candidates, n)
		}
	}
}

// SetSeeds gives a node its seeds, each with a record, less this process
// and repeats.
func (t *Table) SetSeeds(seeds []Node) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seeds = nil
	for _, n := range seeds {
		if n != t.self && !slices.ContainsFunc(t.seeds, func(p *peer) bool { return p.Node == n }) {
			t.seeds = append(t.seeds, &peer{Node: n, came: seed})
		}
	}
}

// Seeds is a node's seeds, less this process.
func (t *Table) Seeds() []Node {
	t.mu.Lock()
	defer t.mu.Unlock()
	var seeds []Node
	for _, p := range t.seeds {
		seeds = append(seeds, p.Node)
	}
	return seeds
}

// NextRound counts a round, before any of its calls. A candidate's
// refusal holds for the round it came in only: met again in that round
// (the walk, the swap), the candidate is passed over; in a later round it
// is announced to again.
func (t *Table) NextRound() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.round++
	for _, p := range t.candidates {
		p.retryAt, p.backoff = 0, 0
	}
	t.forgetCandidates()
}

// Checked takes the outcomes of a round's checks of nodes, entries when it
// began, and returns those that now leave (sweepVerdict, refresh.go): an
// answer clears a record's failures, a failure of this host's own counts
// against nobody (ownfaults.go), and any other adds one. What the round's
// cap on removals by timeout leaves goes to DELETEs until the next round.
func (t *Table) Checked(nodes []Node, outcomes []outcome, fails int) (gone []Node) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var records []*peer
	for i, n := range nodes {
		p := t.byNode[n]
		if p == nil { // gone meanwhile, some other way
			outcomes[i] = ourFault
			p = &peer{}
		}
		records = append(records, p)
		switch outcomes[i] {
		case answered:
			p.fails, p.answered = 0, t.now()
		case ourFault:
		default:
			p.fails++
		}
	}
	gone, t.lateLeft = sweepVerdict(records, outcomes, fails, t.rng)
	return gone
}

// TakeLate takes one of the removals that timeouts may still make until
// the next round, if one is left (silence.go, room.go).
func (t *Table) TakeLate() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lateLeft == 0 {
		return false
	}
	t.lateLeft--
	return true
}

// Answered notes that n has just answered a check: one that a DELETE from
// its own address asked for if own, else one of its announce's, or of a
// DELETE's from elsewhere (silence.go). Its failing row, if any, ends.
func (t *Table) Answered(n Node, own bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.byNode[n]; p != nil {
		if own {
			p.ownAnswered = t.now()
		}
		p.answered, p.fails = t.now(), 0
	}
}

// AnswerHolds reports whether n, an entry, answered a check so lately
// that a DELETE of it from src may rest on that answer (answerHolds,
// silence.go).
func (t *Table) AnswerHolds(n Node, src netip.Addr, holdOff time.Duration) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.byNode[n]
	return p != nil && answerHoldsFor(p, src, t.now(), holdOff)
}

// Shun takes n, which answered not as a node, from every list for rounds
// rounds.
func (t *Table) Shun(n Node, rounds int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.candidate(n); p != nil {
		p.shunnedTo = t.round + rounds + 1
	}
}

// Shunned reports whether n is taken from every list in this round.
func (t *Table) Shunned(n Node) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.record(n)
	return p != nil && t.round < p.shunnedTo
}

// Refused notes n's answer to an announce: refused says that the next one
// would be refused too, and is put off (backoff.go).
func (t *Table) Refused(n Node, refused bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.record(n)
	if refused {
		p = t.candidate(n) // a candidate that took us has nothing to remember
	}
	if p != nil {
		p.retryAt, p.backoff = backoff(p.backoff, refused, t.round)
	}
}

// BackingOff reports whether n refused our last announce lately: it is
// checked with GET /, not announced to, in this round.
func (t *Table) BackingOff(n Node) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.record(n)
	return p != nil && t.round < p.retryAt
}

// CheckedBy notes that n checked us (checkedby.go).
func (t *Table) CheckedBy(n Node) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.record(n); p != nil {
		p.checkedUs = true
	}
}

// TakeCheckedBy reports whether n checked us since the last time it was
// asked.
func (t *Table) TakeCheckedBy(n Node) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.record(n)
	if p == nil {
		return false
	}
	checked := p.checkedUs
	p.checkedUs = false
	return checked
}

// Saw notes the address that n says our calls come from (nat.go).
func (t *Table) Saw(n Node, addr netip.Addr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.record(n); p != nil {
		p.saw = addr
	}
}

// SeenAt is the address that n says our calls come from, if it said.
func (t *Table) SeenAt(n Node) (netip.Addr, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.record(n)
	if p == nil || !p.saw.IsValid() {
		return netip.Addr{}, false
	}
	return p.saw, true
}

// Elsewhere is the address other than ip that most hosts say our calls
// come from, if enough of them agree (nat.go).
func (t *Table) Elsewhere(ip netip.Addr) (netip.Addr, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return elsewhere(append(slices.Clone(t.entries), t.seeds...), ip)
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
			if n != t.self && t.byNode[n] == nil {
				t.insert(n, found)
			}
		}
		if len(t.entries) > t.max {
			return fmt.Errorf("%s holds %d nodes, more than -m %d: raise -m", t.path, len(t.entries), t.max)
		}
	}
	nodes := t.nodes()
	body := encodeNodes(nodes)
	t.publish(nodes, body)
	t.saved = t.changes // what it loaded is on disk: the file, or the file rewritten below
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

// save returns once change number upTo is on disk. The first caller to find
// no write under way writes everything changed so far, once the disk has
// rested writeRest times as long as the last write took, so that writes
// take at most a share of the time whatever callers do; callers arriving
// meanwhile wait, and the next of them writes all their changes at once
// (group commit). t.mu is held on entry and exit, and released while
// waiting and writing.
func (t *Table) save(upTo uint64) error {
	for t.saved < upTo {
		if t.path == "" { // in memory only: nothing to write; encode when asked
			t.saved = t.changes
			t.served.Store(nil)
			return nil
		}
		if t.writing {
			t.written.Wait()
			continue
		}
		t.writing = true
		if rest := time.Duration(writeRest)*t.cost - time.Since(t.wrote); rest > 0 {
			// Coalesce: whatever changes meanwhile goes in this one write.
			t.mu.Unlock()
			time.Sleep(rest)
			t.mu.Lock()
		}
		batch, nodes := t.changes, t.nodes()
		t.mu.Unlock()
		start := time.Now()
		body := encodeNodes(nodes)
		err := writeFile(t.path, body)
		if errors.Is(err, fs.ErrNotExist) {
			if err = t.recreate(); err == nil {
				err = writeFile(t.path, body)
			}
		}
		t.mu.Lock()
		t.writing = false
		t.wrote = time.Now()
		t.cost = t.wrote.Sub(start)
		t.written.Broadcast()
		if err != nil {
			return fmt.Errorf("save %s: %w", t.path, err)
		}
		t.saved = batch
		t.publish(nodes, body)
	}
	return nil
}
