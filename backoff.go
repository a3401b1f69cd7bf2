package main

// Backoff: what stops a node from repeating, every round, an announce that
// its peer will only refuse again. A refusal is a fact about us, not about
// the peer (STYLE, "liveness is not admission"): behind NAT every peer
// answers 403, and a full peer 409. So the node keeps such a peer, checks
// it with GET / instead, and announces to it again after 2 rounds, then 4,
// up to maxBackoff, at the same one request per peer per round (TestNAT).

import "sync"

// backoff is when to announce again to a peer that refused us.
type backoff struct{ until, wait int } // in rounds

// backoffs is the peers that refused our last announce to them.
type backoffs struct {
	mu sync.Mutex
	of map[Node]backoff
}

func newBackoffs() *backoffs { return &backoffs{of: map[Node]backoff{}} }

// note records n's answer to an announce in round. After a refusal that
// the next announce would get too (403: we call from another address; 409:
// it is full), the next announce waits firstBackoff rounds, then twice
// that, up to maxBackoff. Any other answer resets it: a 422 may come from
// one lost packet.
func (b *backoffs) note(n Node, refused bool, round int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !refused {
		delete(b.of, n)
		return
	}
	next := b.of[n]
	next.wait = min(max(2*next.wait, firstBackoff), maxBackoff)
	next.until = round + next.wait
	b.of[n] = next
}

// waiting reports whether n refused us lately, as of round: it is checked
// with GET /, not announced to.
func (b *backoffs) waiting(n Node, round int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return round < b.of[n].until
}

// forget drops the peers that gone says are gone.
func (b *backoffs) forget(gone func(Node) bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for n := range b.of {
		if gone(n) {
			delete(b.of, n)
		}
	}
}
