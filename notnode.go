package main

// What is not a node: what stops a lying seed from aiming us at a third
// party, such as a web server. Only an answer to GET / or POST / that is a
// JSON object is a node's (the blog's nodes answer {}), with a status a
// node gives (refusal), and to GET /nodes/ a JSON array; an address that
// answered otherwise (HTML, not HTTP, a redirect, a JSON API's 404) is
// taken from no list for -f rounds, whether tried as a
// candidate or checked as a peer, and a peer that does so is dropped like
// a dead one, without more calls (Table.Shun). A web server a seed lists
// is called once every -f+1 rounds, and never once no list names it
// (TestNodeShunsWhatIsNotANode). A liar's 10,000 ports of a victim that
// answers {} to everything cost each node at most 2 calls a round once the
// list is gone, and none once the victim has answered its list
// (TestSimulationVictimOfALiar).

import (
	"bytes"
	"encoding/json"
	"errors"
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
