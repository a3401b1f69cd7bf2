package main

// Checked by a seed: what keeps a seed's load at one request per node per
// round. Every process checks every entry itself each round (an announce
// from a node's address proves nothing about its port), and every node
// announced itself to every seed each round, so the seed got two requests
// per node. Now the seed's check, GET /, says whom it comes from in
// fromHeader (the blog's nodes ignore it): a node that its seed checked
// since its last round knows it is listed there, and does not announce to
// it (TestNodeNeedNotAnnounceToASeedThatChecksIt). A header naming another
// address than the call's is ignored.

import (
	"net/http"
	"net/netip"
	"sync"
)

// fromHeader carries, on our checks (GET /), the address we are listed at:
// a node checked by its seed knows that the seed lists it, or is about to
// (the check of an announce carries it too: if that add fails, the node
// announces again a round later).
const fromHeader = "X-Peerdisc-From"

// checkerOf is the process that r, a check, says it comes from, if the
// address it names is the one the call comes from.
func checkerOf(r *http.Request) (Node, bool) {
	from, err := netip.ParseAddrPort(r.Header.Get(fromHeader))
	if err != nil || from.Addr().Unmap() != remoteIP(r) {
		return Node{}, false
	}
	return Node{IP: from.Addr().Unmap(), Port: from.Port()}, true
}

// callers is the processes that called us in some way (checked us, or
// announced themselves) since a node's last round, at most maxCheckers of
// them.
type callers struct {
	mu   sync.Mutex
	seen map[Node]bool
}

// note remembers that n has just called us.
func (c *callers) note(n Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[Node]bool{}
	}
	if len(c.seen) < maxCheckers {
		c.seen[n] = true
	}
}

// take returns the processes noted since it was last called.
func (c *callers) take() map[Node]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := c.seen
	c.seen = nil
	return seen
}
