package main

// What is not a node: what stops a lying seed from aiming us at a third
// party, such as a web server. Only an answer to GET / or POST / that is a
// JSON object is a node's (the blog's nodes answer {}); an address that
// answered otherwise (HTML, not HTTP, a redirect) is taken from no list
// for -f rounds, whether tried as a candidate or checked as a peer, and a
// peer that does so is dropped like a dead one. A web server a seed lists
// is called once every -f+1 rounds, and never once no list names it
// (TestNodeShunsWhatIsNotANode).

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
