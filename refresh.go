package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// leaveTimeout bounds the goodbyes a stopping node sends.
	leaveTimeout = time.Second
	// maxInFlight bounds the checks a round runs at once, so that 10,000 peers
	// never mean 10,000 open sockets.
	maxInFlight = 64
	// maxListBody bounds a peer's answer to GET /nodes/: maxListEntries
	// nodes take about 610 kB. A longer answer is refused.
	maxListBody = 1 << 20
	// maxHeaderBytes bounds the headers of a peer's answer (Go's default is 10 MB).
	maxHeaderBytes = 32 << 10
)

// peerClient makes every outbound call. Its http.Client has a Timeout, so no
// peer can hold a call longer than that.
type peerClient struct {
	http *http.Client
	self Node       // what announce sends
	seen *sightings // where peers say our calls come from
}

// newPeerClient returns a client whose calls give up after timeout. It
// ignores proxy settings and redirects: peers are reached directly. It never
// asks for compression, so a small answer cannot inflate into a large one.
// When self is one of this host's own addresses, calls to addresses of its
// family and scope (loopback or not) go out from it, so that peers see the
// address that announces carry.
func newPeerClient(timeout time.Duration, self Node) *peerClient {
	var from netip.Addr
	if ip, err := netip.ParseAddr(self.IP); err == nil && hostAddrs()(ip) {
		from = ip
	}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		to, err := netip.ParseAddrPort(addr)
		if to := to.Addr().Unmap(); err == nil && from.IsValid() && to.Is4() == from.Is4() && to.IsLoopback() == from.IsLoopback() {
			d.LocalAddr = &net.TCPAddr{IP: from.AsSlice()}
		}
		return d.DialContext(ctx, network, addr)
	}
	return &peerClient{
		self: self,
		seen: &sightings{seen: map[netip.Addr]netip.Addr{}},
		http: &http.Client{
			Timeout: timeout,
			// A redirect is not an answer: following one would let a peer
			// send this node's requests anywhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Transport: &http.Transport{
				Proxy:              nil,
				DialContext:        dial,
				DisableCompression: true,
				// One call per peer per round, minutes apart: a connection
				// kept for it costs more than it saves, and the transport's
				// bookkeeping for 10,000 peers would grow the seed by half.
				DisableKeepAlives:      true,
				MaxResponseHeaderBytes: maxHeaderBytes,
			},
		},
	}
}

// peerError says why a call to a peer failed in this program's own words,
// such as "refused" or "answered 503": nothing a peer sends is ever quoted,
// so no caller can read another service's bytes through our errors.
type peerError struct {
	reason string
	status int // the peer's HTTP status, if it answered
}

func (e *peerError) Error() string { return e.reason }

// failure turns an error from the HTTP client into a peerError.
func failure(err error) *peerError {
	var netErr net.Error
	var opErr *net.OpError
	switch {
	case errors.Is(err, context.Canceled):
		return &peerError{reason: "cancelled"}
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return &peerError{reason: "timed out"}
	case errors.Is(err, syscall.ECONNREFUSED):
		return &peerError{reason: "refused"}
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return &peerError{reason: "unreachable"}
	}
	return &peerError{reason: "not an HTTP answer"}
}

// observedHeader carries, on every answer to GET / and POST /, the address
// the caller's connection came from. A node behind NAT learns from it the
// address others see it at; the blog's nodes ignore it.
const observedHeader = "X-Peerdisc-Observed"

// call sends one request to n and returns the status and body of its
// answer, the body read up to limit bytes and one more, so that the caller
// can tell a longer one. err is set only when n gave no HTTP answer.
func (c *peerClient) call(ctx context.Context, method string, n Node, path string, body []byte, limit int64) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+n.String()+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, failure(err)
	}
	defer resp.Body.Close()
	if seen, err := netip.ParseAddr(resp.Header.Get(observedHeader)); err == nil && c.seen != nil {
		c.seen.note(n, seen.Unmap())
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return 0, nil, failure(err)
	}
	return resp.StatusCode, data, nil
}

// isObject reports whether data is one JSON object: how a node answers
// GET / and POST /, the blog's included ({}), and what a web server that
// answers 200 to everything does not send.
func isObject(data []byte) bool {
	data = bytes.TrimSpace(data)
	return len(data) > 0 && data[0] == '{' && json.Valid(data)
}

// ping is the liveness check: a node answers GET / with 2xx and a JSON object.
func (c *peerClient) ping(ctx context.Context, n Node) error {
	status, data, err := c.call(ctx, http.MethodGet, n, "/", nil, 1<<10)
	switch {
	case err != nil:
		return err
	case status/100 != 2:
		return &peerError{reason: fmt.Sprintf("answered %d", status), status: status}
	case !isObject(data):
		return &peerError{reason: "not a node: its answer is not a JSON object", status: status}
	}
	return nil
}

// announce sends this node to n with POST /. Its error is nil when n
// answered as a node does, with a JSON object: then n is alive, whether it
// took us (2xx: it now lists us) or refused us (4xx: refused holds the
// status, a fact about us, not about n). So one call checks a peer and
// introduces us to it.
func (c *peerClient) announce(ctx context.Context, n Node) (refused int, err error) {
	self, _ := json.Marshal(c.self)
	status, data, err := c.call(ctx, http.MethodPost, n, "/", self, 1<<10)
	switch {
	case err != nil:
		return 0, err
	case status/100 != 2 && status/100 != 4:
		return 0, &peerError{reason: fmt.Sprintf("answered %d", status), status: status}
	case !isObject(data):
		return 0, &peerError{reason: "not a node: its answer is not a JSON object", status: status}
	case status/100 == 4:
		return status, nil
	}
	return 0, nil
}

// remove asks n to drop this node: DELETE /nodes/ of itself, when it leaves.
func (c *peerClient) remove(ctx context.Context, n Node) error {
	self, _ := json.Marshal(c.self)
	status, _, err := c.call(ctx, http.MethodDelete, n, "/nodes/", self, maxListBody)
	if err == nil && status/100 != 2 {
		err = &peerError{reason: fmt.Sprintf("answered %d", status), status: status}
	}
	return err
}

// list fetches n's known nodes: a random sample of at most sample of them
// (GET /nodes/?sample=N), or all if sample is 0, and at most maxListEntries
// from an answer of at most maxListBody bytes. Entries that are not valid
// nodes are dropped, and so are loopback and link-local ones unless n is on
// loopback itself: another host cannot make this process call its own
// services.
func (c *peerClient) list(ctx context.Context, n Node, sample int) ([]Node, error) {
	path := "/nodes/"
	if sample > 0 {
		path += "?sample=" + strconv.Itoa(sample)
	}
	status, data, err := c.call(ctx, http.MethodGet, n, path, nil, maxListBody)
	if err != nil {
		return nil, err
	}
	if status/100 != 2 {
		return nil, &peerError{reason: fmt.Sprintf("answered %d", status), status: status}
	}
	if len(data) > maxListBody {
		return nil, &peerError{reason: fmt.Sprintf("answer over %d bytes", maxListBody)}
	}
	nodes, _ := parseNodes(data, maxListEntries)
	if nodes == nil {
		return nil, &peerError{reason: "not a JSON array of nodes"}
	}
	if !n.loopback() {
		nodes = slices.DeleteFunc(nodes, Node.scoped)
	}
	return nodes, nil
}

// forEach calls fn for every node, at most maxInFlight at once, and reports
// which calls succeeded, in the order of nodes. It keeps no error: a sweep
// of 10,000 dead peers should not hold 10,000 of them until it ends.
func forEach(ctx context.Context, nodes []Node, fn func(context.Context, Node) error) (ok []bool) {
	ok = make([]bool, len(nodes))
	slots := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	for i, n := range nodes {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			ok[i] = fn(ctx, n) == nil
		}()
	}
	wg.Wait()
	return ok
}

// refresher runs the rounds of one role and remembers, between rounds, how
// many checks in a row each peer has failed.
type refresher struct {
	table  *Table
	client *peerClient
	seeds  []Node        // the bootstrap list (node role)
	limit  int           // -k: the peers a node looks for
	fails  int           // -f: failed checks in a row that remove a peer
	retry  time.Duration // the first wait before another round while alone
	failed map[Node]int
	rng    *rand.Rand // the round's random choices; seeded in the simulation
	told   map[netip.Addr]bool
	log    *slog.Logger

	aloneWait time.Duration // the last wait while alone (loop only)

	mu       sync.Mutex
	round    int              // rounds run
	backoffs map[Node]backoff // peers that refused our announce lately
}

// roundStats is what one round did, for its log line.
type roundStats struct {
	learned, removed []Node
	alone            bool // a node that knows no peer: retry soon, not in -u
}

// newRefresher opens the table in -d (or defaultDir) for the process listening on ln.
func newRefresher(cfg config, ln net.Listener, defaultDir string, log *slog.Logger) (*refresher, error) {
	self := Node{IP: cfg.advertise, Port: ln.Addr().(*net.TCPAddr).Port}
	t, err := openTable(cmp.Or(cfg.dir, defaultDir), cfg.file, self, cfg.max, cfg.hostMax)
	if err != nil {
		return nil, err
	}
	return newProcess(cfg, t, newPeerClient(time.Duration(cfg.timeout), self), log), nil
}

// newProcess is the rounds of a process with table t that calls out
// through c, as the flags say: the roles and the simulation both make
// their processes with it.
func newProcess(cfg config, t *Table, c *peerClient, log *slog.Logger) *refresher {
	return &refresher{
		table:    t,
		client:   c,
		limit:    cfg.limit,
		fails:    cfg.fails,
		retry:    time.Second,
		rng:      rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		told:     map[netip.Addr]bool{},
		log:      log,
		backoffs: map[Node]backoff{},
	}
}

// sweep checks every known node with check and removes, and returns, those
// that have now failed r.fails times in a row. Nodes that called us
// themselves since the last sweep are alive: they are not checked, which
// halves the calls between peers and keeps the seed's load at one announce
// per node per round.
func (r *refresher) sweep(ctx context.Context, check func(context.Context, Node) error) []Node {
	heard := r.table.TakeHeard()
	nodes := slices.DeleteFunc(r.table.List(), func(n Node) bool { return heard[n] })
	ok := forEach(ctx, nodes, check)
	if ctx.Err() != nil {
		return nil // shutting down: a cancelled check says nothing about the peer
	}
	failed := map[Node]int{} // forget peers that left the table some other way
	var gone []Node
	for i, n := range nodes {
		if ok[i] {
			continue
		}
		failed[n] = r.failed[n] + 1
		if failed[n] >= r.fails {
			gone = append(gone, n)
			delete(failed, n)
		}
	}
	r.failed = failed
	r.mu.Lock()
	for n := range r.backoffs { // forget peers that are gone
		if !slices.Contains(r.seeds, n) && !r.table.Has(n) {
			delete(r.backoffs, n)
		}
	}
	r.mu.Unlock()
	removed, err := r.table.Remove(gone...)
	if err != nil {
		r.log.Error("remove dead peers", "err", err)
	}
	return removed
}

// loop runs round at once and then about every interval until ctx is
// done, logging each. Rounds never overlap, and a round that overruns the
// interval delays the next one rather than letting them pile up. Each log
// line names the peers the round learned and removed, and counts those that
// others added or removed through the API since the last round (announces,
// operator calls), so that known = before + learned + announced - removed;
// failing counts the peers kept although their last check failed (-f).
func (r *refresher) loop(ctx context.Context, interval time.Duration, round func(context.Context) roundStats) {
	before := r.table.Len()
	for {
		start := time.Now()
		s := round(ctx)
		if ctx.Err() != nil {
			return
		}
		known := r.table.Len()
		r.log.Info("round", "known", known, "learned", names(s.learned), "removed", names(s.removed),
			"announced", known-before-len(s.learned)+len(s.removed), "failing", len(r.failed), "took", time.Since(start).Round(time.Millisecond))
		before = known
		select {
		case <-ctx.Done():
			return
		case <-time.After(max(0, r.wait(s, interval)-time.Since(start))):
		}
	}
}

// wait is the time from the start of a round to the start of the next:
// interval give or take 10%, at random, so that processes started together,
// or brought back together by a seed's outage, drift apart. While rounds
// end alone it is shorter: r.retry, then twice that, and so on up to
// interval, so that a node started before its seed joins soon after the
// seed starts.
func (r *refresher) wait(s roundStats, interval time.Duration) time.Duration {
	if !s.alone {
		r.aloneWait = 0
		return time.Duration(float64(interval) * (0.9 + 0.2*r.rng.Float64()))
	}
	r.aloneWait = min(max(2*r.aloneWait, r.retry), interval)
	return r.aloneWait
}

// names lists nodes for a log line: at most 8 addresses, then how many more.
func names(nodes []Node) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, n := range nodes {
		if i == 8 {
			fmt.Fprintf(&b, " +%d more", len(nodes)-i)
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(n.String())
	}
	return b.String() + "]"
}
