package main

// maxBackoff is the most rounds between announces to a peer that refuses them.
const maxBackoff = 16

// backoff is when to announce again to a peer that refused us.
type backoff struct{ until, wait int } // in rounds

// backOff notes n's answer to an announce. After a refusal that the next
// announce would get too (403: we call from another address; 409: it is
// full), the next announce waits 2 rounds, then 4, up to maxBackoff. Any
// other answer resets it: a 422 may come from one lost packet.
func (r *refresher) backOff(n Node, refused bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !refused {
		delete(r.backoffs, n)
		return
	}
	b := r.backoffs[n]
	b.wait = min(max(2*b.wait, 2), maxBackoff)
	b.until = r.round + b.wait
	r.backoffs[n] = b
}

// backingOff reports whether n refused us lately: it is checked with GET /, not announced to.
func (r *refresher) backingOff(n Node) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.round < r.backoffs[n].until
}
