package main

// Backoff: what stops a node from repeating, every round, an announce that
// its peer will only refuse again. A refusal is a fact about us, not about
// the peer (STYLE, "liveness is not admission"): behind NAT every peer
// answers 403, a full peer 409, and a full seed at 10,000 nodes refuses 9
// in 10 of them. So the node keeps such a peer, checks it with GET /
// instead, and announces to it again after 2 rounds, then 4, up to
// maxBackoff, at the same one request per peer per round (TestNAT): the
// seed of 10,000 nodes gets 2,182 requests a round, not 10,000 more.

// backoff is when to announce again to a peer (retryAt, a round) and the
// wait that makes, after its answer to an announce in round that waited
// wait before: after a refusal that the next announce would get too (403:
// we call from another address; 409: it is full), firstBackoff rounds,
// then twice the last wait, up to maxBackoff; after any other answer, at
// once: a 422 may come from one lost packet.
func backoff(wait int, refused bool, round int) (retryAt, nextWait int) {
	if !refused {
		return 0, 0
	}
	wait = min(max(2*wait, firstBackoff), maxBackoff)
	return round + wait, wait
}
