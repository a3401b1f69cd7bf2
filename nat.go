package main

// Behind NAT: what lets a node that nobody can reach still join, and tell
// its user why nobody lists it. Its announces all get 403 (its calls come
// from its router's address), but the peers are alive, so it keeps the -k
// it reaches and checks them with GET / (backoff.go). Every answer to
// GET / and POST / says, in observedHeader, the address the call came
// from; each peer's record keeps what it said (Table.Saw), and once
// agreeing hosts say it is not the node's -a, the node says once what to
// do. TestNAT runs it behind a router that masquerades with nftables,
// without and then with a port forward.

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
)

// observedHeader carries, on every answer to GET / and POST /, the address
// the caller's connection came from. A node behind NAT learns from it the
// address others see it at; the blog's nodes ignore it.
const observedHeader = "X-Peerdisc-Observed"

// elsewhere returns the address of ours's family, other than ours, that
// the most hosts among peers say our calls come from, if at least agreeing
// hosts say so, and more than say ours: one host alone may lie, a few
// cannot outvote the rest, and nodes that share a host vote once.
func elsewhere(peers []*peer, ours netip.Addr) (netip.Addr, bool) {
	said := map[netip.Addr]netip.Addr{} // a host's last word
	for _, p := range peers {
		if p.saw.IsValid() {
			said[p.IP] = p.saw
		}
	}
	votes := map[netip.Addr]int{}
	var best netip.Addr
	for _, addr := range said {
		if addr.Is4() != ours.Is4() {
			continue
		}
		votes[addr]++
		if addr != ours && (votes[addr] > votes[best] || votes[addr] == votes[best] && addr.Less(best)) {
			best = addr
		}
	}
	return best, votes[best] >= agreeing && votes[best] > votes[ours]
}

// warnIfUnreachable says, once for each address, when hosts agree that our
// calls come from another address than self's (as behind NAT), what that
// means and what to do. told is the address it named last; it returns the
// one it names now.
func warnIfUnreachable(t *Table, self Node, told netip.Addr, log *slog.Logger) netip.Addr {
	seen, ok := t.Elsewhere(self.IP)
	if !ok || seen == told {
		return told
	}
	log.Warn(fmt.Sprintf("others see our calls come from %s, so nobody can reach us at %s: "+
		"we keep the peers we reach, but none will list us. "+
		"To be listed, forward port %d of %s to this host and pass -a %s",
		seen, self, self.Port, seen, seen))
	return seen
}

// observed tells the caller, in observedHeader, the address its call came
// from: how a node behind NAT learns the address others see it at.
func observed(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ip := remoteIP(r); ip.IsValid() {
			w.Header().Set(observedHeader, ip.String())
		}
		h.ServeHTTP(w, r)
	})
}
