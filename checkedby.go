package main

// Checked by a seed: what keeps a seed's load at one request per node per
// round. Every process checks every entry itself each round (an announce
// from a node's address proves nothing about its port), and every node
// announced itself to every seed each round, so the seed got two requests
// per node. Now the seed's check, GET /, says whom it comes from in
// fromHeader (the blog's nodes ignore it): a node that its seed checked
// since its last round knows it is listed there, and does not announce to
// it (Table.CheckedBy, TestNodeNeedNotAnnounceToASeedThatChecksIt). A
// header naming another address than the call's is ignored.

import (
	"net"
	"net/http"
	"strconv"
)

// fromHeader carries, on our checks (GET /), the address we are listed at:
// a node checked by its seed knows that the seed lists it, or is about to
// (the check of an announce carries it too: if that add fails, the node
// announces again a round later).
const fromHeader = "X-Peerdisc-From"

// checkerOf is the process that r, a check, says it comes from, if the
// address it names is the one the call comes from.
func checkerOf(r *http.Request) (Node, bool) {
	host, port, err := net.SplitHostPort(r.Header.Get(fromHeader))
	ip, errIP := parseIP(host)
	n, errPort := strconv.ParseUint(port, 10, 16)
	if err != nil || errIP != nil || errPort != nil || ip != remoteIP(r) {
		return Node{}, false
	}
	return Node{IP: ip, Port: uint16(n)}, true
}
