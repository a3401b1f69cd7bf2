package main

// Behind NAT: what lets a node that nobody can reach still join, and tell
// its user why nobody lists it. Its announces all get 403 (its calls come
// from its router's address), but the peers are alive, so it keeps the -k
// it reaches and checks them with GET / (backoff.go). Every answer to
// GET / and POST / says, in observedHeader, the address the call came
// from; once agreeing hosts say it is not the node's -a, the node says
// once what to do. TestNAT runs it behind a router that masquerades with
// nftables, without and then with a port forward.

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
)

// observedHeader carries, on every answer to GET / and POST /, the address
// the caller's connection came from. A node behind NAT learns from it the
// address others see it at; the blog's nodes ignore it.
const observedHeader = "X-Peerdisc-Observed"

// sightings is what peers report, in observedHeader, about the address our
// calls come from: for each peer's host, the address it saw last.
type sightings struct {
	mu   sync.Mutex
	seen map[netip.Addr]netip.Addr // peer's host -> the address it saw
	told map[netip.Addr]bool       // the addresses warnIfUnreachable has named
}

func newSightings() *sightings {
	return &sightings{seen: map[netip.Addr]netip.Addr{}, told: map[netip.Addr]bool{}}
}

// note records that from saw our call come from addr.
func (s *sightings) note(from Node, addr netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.seen[from.IP]; ok || len(s.seen) < maxSightings {
		s.seen[from.IP] = addr
	}
}

// by is the address that n's host saw our calls come from, if it said.
func (s *sightings) by(n Node) (netip.Addr, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	addr, ok := s.seen[n.IP]
	return addr, ok
}

// elsewhere returns the address of self's family, other than self's, that
// the most hosts saw our calls come from, if at least agreeing of them
// say so: one host alone may lie. s.mu is held.
func (s *sightings) elsewhere(self Node) (netip.Addr, bool) {
	ours := self.IP
	votes := map[netip.Addr]int{}
	var best netip.Addr
	for _, addr := range s.seen {
		if addr == ours || addr.Is4() != ours.Is4() {
			continue
		}
		votes[addr]++
		if votes[addr] > votes[best] || votes[addr] == votes[best] && addr.Less(best) {
			best = addr
		}
	}
	return best, votes[best] >= agreeing
}

// warnIfUnreachable says once, when hosts agree that our calls come from
// another address than self's (as behind NAT), what that means and what
// to do.
func (s *sightings) warnIfUnreachable(self Node, log *slog.Logger) {
	s.mu.Lock()
	seen, ok := s.elsewhere(self)
	first := ok && !s.told[seen]
	if first {
		s.told[seen] = true
	}
	s.mu.Unlock()
	if !first {
		return
	}
	log.Warn(fmt.Sprintf("others see our calls come from %s, so nobody can reach us at %s: "+
		"we keep the peers we reach, but none will list us. "+
		"To be listed, forward port %d of %s to this host and pass -a %s",
		seen, self, self.Port, seen, seen))
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
