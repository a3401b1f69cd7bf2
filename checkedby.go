package main

// fromHeader carries, on our checks (GET /), the address we are listed at:
// a node checked by its seed knows that the seed lists it. The blog's
// nodes ignore it.
const fromHeader = "X-Peerdisc-From"

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
