package main

// What is not a node: what stops a lying seed from aiming us at a third
// party, such as a web server. Only an answer to GET / or POST / that is a
// JSON object is a node's (the blog's nodes answer {}), and to GET /nodes/
// a JSON array; an address that answered otherwise (HTML, not HTTP, a
// redirect) is taken from no list for -f rounds, whether tried as a
// candidate or checked as a peer, and a peer that does so is dropped like
// a dead one, without more calls. A web server a seed lists is called once
// every -f+1 rounds, and never once no list names it
// (TestNodeShunsWhatIsNotANode). What answers {} to everything is found
// out too: a peer that never announces itself to us and is never seen
// listing anyone (acting) is asked for its list after idleRounds x -f
// rounds, and gives up its place to a candidate of another group if it
// lists nobody. A liar's 10,000 ports of one such victim cost each node at
// most 2 calls a round once the list is gone, and none once the victim has
// answered its list (TestSimulationVictimOfALiar). A node behind NAT,
// which nobody announces to, keeps its peers: they list others.

import (
	"bytes"
	"encoding/json"
	"errors"
	"sync"
)

// notANode reports whether err is an answer that no node gives.
func notANode(err error) bool {
	var pe *peerError
	return errors.As(err, &pe) && pe.notNode
}

// isObject reports whether data is one JSON object: how a node answers
// GET / and POST /, the blog's included ({}), and what a web server that
// answers 200 to everything does not send.
func isObject(data []byte) bool {
	data = bytes.TrimSpace(data)
	return len(data) > 0 && data[0] == '{' && json.Valid(data)
}

// shunned is the addresses that answered not as a node, each with the
// round before which it is taken from no list.
type shunned struct {
	rounds int // -f

	mu    sync.Mutex
	until map[Node]int
}

func newShunned(rounds int) *shunned { return &shunned{rounds: rounds, until: map[Node]int{}} }

// add shuns n, which answered not as a node in round, for the next s.rounds rounds.
func (s *shunned) add(n Node, round int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.until[n] = round + s.rounds + 1
}

// has reports whether n is shunned in round.
func (s *shunned) has(n Node, round int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return round < s.until[n]
}

// expire forgets the addresses no longer shunned in round.
func (s *shunned) expire(round int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for n, until := range s.until {
		if round >= until {
			delete(s.until, n)
		}
	}
}

// acting is, for each peer, the last round it acted as a node: it
// announced itself to us, or a list it gave named someone.
type acting struct {
	mu   sync.Mutex
	last map[Node]int
}

func newActing() *acting { return &acting{last: map[Node]int{}} }

// saw notes that n acted as a node in round.
func (a *acting) saw(n Node, round int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.last[n] = round
}

// idle returns the first of peers that has not acted as a node for rounds
// rounds, as of round; a peer not seen before starts its count now.
func (a *acting) idle(peers []Node, round, rounds int) (Node, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, n := range peers {
		last, ok := a.last[n]
		switch {
		case !ok:
			a.last[n] = round
		case round-last >= rounds:
			return n, true
		}
	}
	return Node{}, false
}

// forget drops the peers that gone says are gone.
func (a *acting) forget(gone func(Node) bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for n := range a.last {
		if gone(n) {
			delete(a.last, n)
		}
	}
}
