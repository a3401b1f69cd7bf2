package main

import (
	"fmt"
	"net/http"
	"net/netip"
	"sync"
)

// observedHeader carries, on every answer to GET / and POST /, the address
// the caller's connection came from. A node behind NAT learns from it the
// address others see it at; the blog's nodes ignore it.
const observedHeader = "X-Peerdisc-Observed"

// maxSightings bounds the peers whose report of our address is kept.
const maxSightings = 256

// sightings is what peers report, in observedHeader, about the address our
// calls come from: for each peer's host, the address it saw last.
type sightings struct {
	mu   sync.Mutex
	seen map[netip.Addr]netip.Addr // peer's host -> the address it saw
}

// note records that from saw our call come from addr.
func (s *sightings) note(from Node, addr netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	host := netip.MustParseAddr(from.IP)
	if _, ok := s.seen[host]; ok || len(s.seen) < maxSightings {
		s.seen[host] = addr
	}
}

// by is the address that n's host saw our calls come from, if it said.
func (s *sightings) by(n Node) (netip.Addr, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	addr, ok := s.seen[netip.MustParseAddr(n.IP)]
	return addr, ok
}

// elsewhere returns the address of self's family, other than self's, that
// the most hosts saw our calls come from, if at least two agree: one host
// alone may lie.
func (s *sightings) elsewhere(self Node) (netip.Addr, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ours := netip.MustParseAddr(self.IP)
	votes := map[netip.Addr]int{}
	var best netip.Addr
	for _, addr := range s.seen {
		if addr != ours && addr.Is4() == ours.Is4() {
			if votes[addr]++; votes[addr] > votes[best] || votes[addr] == votes[best] && addr.Less(best) {
				best = addr
			}
		}
	}
	return best, votes[best] >= 2
}

// tellIfUnreachable says once, when two hosts agree that our calls come from
// another address than -a (as behind NAT), what that means and what to do.
func (r *refresher) tellIfUnreachable() {
	seen, ok := r.client.seen.elsewhere(r.client.self)
	if !ok || r.told[seen] {
		return
	}
	r.told[seen] = true
	self := r.client.self
	r.log.Warn(fmt.Sprintf("others see our calls come from %s, so nobody can reach us at %s: we keep the peers we reach, but none will list us. "+
		"To be listed, forward port %d of %s to this host and pass -a %s", seen, self, self.Port, seen, seen))
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
