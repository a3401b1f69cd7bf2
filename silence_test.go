package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/matryer/is"
)

// TestDeleteObeysTheTimeoutCap: a seed's 10 entries all hang. DELETEs of
// each, from other hosts, whose checks time out as the round's did,
// remove one entry until the next round, as timeouts remove at most 1 in
// 100 (at least one) a round: the others get 503, and stay.
func TestDeleteObeysTheTimeoutCap(t *testing.T) {
	is := is.New(t)
	timeout := 300 * time.Millisecond
	seed := startPeer(t, "127.0.0.1", config{role: "seed", max: 20, fails: 2, timeout: seconds(timeout)})
	mux := http.NewServeMux() // the seed's own table, as serve gives it
	addRoutes(mux, api{table: seed.table, checks: newQuota(seed.client.ping, timeout), local: onHost,
		holdOff: answerHolds(time.Second, timeout), log: quiet})
	var hung []Node
	for range 10 {
		hung = append(hung, hungAddr(t).node)
	}
	_, err := seed.table.Add(hung...)
	is.NoErr(err)
	seed.seedRound(context.Background()) // every check times out: one failure each, short of -f 2
	codes := map[int]int{}
	var mu sync.Mutex
	forEachIndex(len(hung), len(hung), func(i int) {
		// each from a subnet of its own
		w := ask(mux, "DELETE", "/nodes/", fmt.Sprintf("203.0.%d.9:4000", i), nodeBody(hung[i]))
		mu.Lock()
		defer mu.Unlock()
		codes[w.Code]++
	})
	t.Logf("DELETEs of 10 hung entries: %v", codes)
	is.Equal(codes[200], 1) // one removed, by the round's cap
	is.Equal(codes[503], 9) // the others refused, for now
	is.Equal(seed.table.Len(), 9)
}
