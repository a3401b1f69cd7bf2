package main

// Peers: what a peer is (Node, as the blog puts it on the wire), and how
// this process talks to one: peerClient makes every outbound call of the
// blog's protocol (ping, announce, list, remove), each bounded in time
// (-t) and in bytes, and says why a call failed in its own words.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Node is one peer's address, as the blog puts it on the wire:
// {"ip_address": "127.0.0.1", "port": 55000}. The program holds the address
// parsed, from the moment it comes in (parseIP), so that it is checked and
// compared in one spelling: ::ffff:0.0.0.0 is 0.0.0.0.
type Node struct {
	IP   netip.Addr `json:"ip_address"`
	Port uint16     `json:"port"`
}

// String gives host:port, with brackets around IPv6 literals.
func (n Node) String() string { return netip.AddrPortFrom(n.IP, n.Port).String() }

// parseIP is the door by which an address written as text comes in, from a
// Node's JSON, a flag or a header: it gives the address in one spelling, an
// IPv4-mapped IPv6 address as its IPv4 one, so that every spelling of one
// address gets the same answer from Valid and every rule after it.
func parseIP(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address literal", s)
	}
	return ip.Unmap(), nil
}

// broadcast is IPv4's limited broadcast address, which is no peer's.
var broadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// Valid reports why n cannot be a peer's address, or nil if it can. n.IP
// comes from parseIP.
func (n Node) Valid() error {
	switch {
	case !n.IP.IsValid():
		return errors.New("ip_address is missing")
	case n.IP.Zone() != "":
		return fmt.Errorf("ip_address %s has a zone, which means nothing to other hosts", n.IP)
	case n.IP.IsUnspecified():
		return fmt.Errorf("ip_address %s is unspecified: give an address others can reach", n.IP)
	case n.IP.IsMulticast() || n.IP == broadcast:
		return fmt.Errorf("ip_address %s is a multicast or broadcast address", n.IP)
	case n.Port == 0:
		return errors.New("port 0 is outside 1-65535")
	}
	return nil
}

// scoped reports whether n's address means something only on one host or one
// link (loopback or link-local), so that no other host may hand it to us.
func (n Node) scoped() bool { return n.IP.IsLoopback() || n.IP.IsLinkLocalUnicast() }

// sharedSpace is RFC 6598's carrier-grade NAT space, private as RFC 1918's
// is, which netip's IsPrivate leaves out.
var sharedSpace = netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64, 0, 0}), 10)

// private reports whether ip is in a private range (RFC 1918, RFC 6598,
// IPv6 unique-local): it means something only inside one network.
func private(ip netip.Addr) bool { return ip.IsPrivate() || sharedSpace.Contains(ip) }

// relayable reports whether a process at from could honestly know n, and
// so hand it to us in a list (geth's netutil.CheckRelayIP): a loopback or
// link-local address only from this host's loopback, a private one only
// from loopback or a private address, as a peer on the same network is.
// Anything else would aim us at services that the sender cannot reach
// itself, and we can.
func relayable(from netip.Addr, n Node) bool {
	switch {
	case from.IsLoopback():
		return true
	case n.scoped():
		return false
	case private(n.IP):
		return private(from)
	}
	return true
}

// audience is who asks for a list, by what it may take from us
// (relayable): the operator, on this host, every entry; a host of a
// private network no loopback or link-local entry; any other host no
// private entry either, which could only aim it at its own network.
type audience uint8

const (
	thisHost audience = iota
	privateNet
	anyHost
)

// audienceOf is the audience of a caller at ip, the operator if here.
func audienceOf(here bool, ip netip.Addr) audience {
	switch {
	case here:
		return thisHost
	case private(ip):
		return privateNet
	}
	return anyHost
}

// gets reports whether n may be in a list for a.
func (a audience) gets(n Node) bool {
	switch {
	case a == thisHost:
		return true
	case n.scoped():
		return false
	case private(n.IP):
		return a == privateNet
	}
	return true
}

// peerClient makes every outbound call. Its http.Client has a Timeout, so no
// peer can hold a call longer than that.
type peerClient struct {
	http *http.Client
	self Node                   // what announce sends
	saw  func(Node, netip.Addr) // told where a peer says our calls come from (nat.go); nil: nobody
}

// newPeerClient returns a client whose calls give up after timeout. It
// ignores proxy settings and redirects: peers are reached directly. It never
// asks for compression, so a small answer cannot inflate into a large one.
// When self is one of this host's own addresses, calls to addresses of its
// family and scope (loopback or not) go out from it, so that peers see the
// address that announces carry.
func newPeerClient(timeout time.Duration, self Node) *peerClient {
	var from netip.Addr
	if hostAddrs()(self.IP) {
		from = self.IP
	}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		to, err := netip.ParseAddrPort(addr)
		ip := to.Addr().Unmap()
		sameScope := ip.Is4() == from.Is4() && ip.IsLoopback() == from.IsLoopback()
		if err == nil && from.IsValid() && sameScope {
			d.LocalAddr = &net.TCPAddr{IP: from.AsSlice()}
		}
		return d.DialContext(ctx, network, addr)
	}
	return &peerClient{
		self: self,
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
	reason   string
	timedOut bool // no answer within -t: the fault may be ours
	notNode  bool // it answered, but not as a node does
	ours     bool // this host could not call out: the fault is ours (ownfaults.go)
	noRoute  bool // no route to the peer: ours if it is so for most peers at once
}

func (e *peerError) Error() string { return e.reason }

// notObject is why an answer to GET / or POST / is not a node's (notnode.go).
const notObject = "not a node: its answer is not a JSON object"

// timedOut reports whether err is a call that got no answer in time.
func timedOut(err error) bool {
	var pe *peerError
	return errors.As(err, &pe) && pe.timedOut
}

// failure turns an error from the HTTP client into a peerError.
func failure(err error) *peerError {
	var netErr net.Error
	var opErr *net.OpError
	switch {
	case errors.Is(err, context.Canceled):
		return &peerError{reason: "cancelled"}
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return &peerError{reason: "timed out", timedOut: true}
	case errors.Is(err, syscall.ECONNREFUSED):
		return &peerError{reason: "refused"}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		strings.Contains(err.Error(), "server closed idle connection"): // net/http's name for one closed unanswered
		// No answer, as from a process past its connection bounds
		// (boundedListener), or restarting: not one that no node gives.
		return &peerError{reason: "closed the connection"}
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return &peerError{reason: "this host is out of file descriptors", ours: true}
	case errors.Is(err, syscall.EADDRNOTAVAIL), errors.Is(err, syscall.EADDRINUSE):
		// No local address, or no free port on the one calls go out
		// from (newPeerClient binds it).
		return &peerError{reason: "this host has no address or port to call from", ours: true}
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return &peerError{reason: "unreachable", noRoute: true}
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return &peerError{reason: "unreachable"}
	}
	return &peerError{reason: "not an HTTP answer", notNode: true}
}

// call sends one request to n and returns the status and body of its
// answer, the body read up to its bound (maxReply for /, maxListBody for
// /nodes/) and one more byte, so that the caller can tell a longer one.
// err is set only when n gave no HTTP answer. A check (GET /) says whom it
// comes from (checkedby.go); an answer's observedHeader is noted (nat.go).
func (c *peerClient) call(ctx context.Context, method string, n Node, path string,
	body []byte) (int, []byte, error) {
	maxBytes := int64(maxListBody)
	if path == "/" {
		maxBytes = maxReply
	}
	url := "http://" + n.String() + path
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.self.Port != 0 && method == http.MethodGet && path == "/" {
		req.Header.Set(fromHeader, c.self.String())
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, failure(err)
	}
	defer resp.Body.Close()
	if seen, err := parseIP(resp.Header.Get(observedHeader)); err == nil && c.saw != nil {
		c.saw(n, seen)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBytes+1))
	if err != nil {
		return 0, nil, failure(err)
	}
	return resp.StatusCode, data, nil
}

// ping is the liveness check: a node answers GET / with 2xx and a JSON object.
func (c *peerClient) ping(ctx context.Context, n Node) error {
	status, data, err := c.call(ctx, http.MethodGet, n, "/", nil)
	switch {
	case err != nil:
		return err
	case status/100 != 2:
		return &peerError{reason: fmt.Sprintf("answered %d", status)}
	case !isObject(data):
		return &peerError{reason: notObject, notNode: true}
	}
	return nil
}

// announce sends this node to n with POST /. Its error is nil when n
// answered as a node does, with a JSON object: then n is alive, whether it
// took us (2xx: it now lists us) or refused us (403, 409, 422, 429 or 503,
// as handleAnnounce does: refused holds the status, a fact about us or
// about n's load, not about whether it runs). Any other 4xx is no node's
// answer, but a JSON API's, say. So one call checks a peer and introduces
// us to it.
func (c *peerClient) announce(ctx context.Context, n Node) (refused int, err error) {
	self, _ := json.Marshal(c.self)
	status, data, err := c.call(ctx, http.MethodPost, n, "/", self)
	switch {
	case err != nil:
		return 0, err
	case status/100 != 2 && !refusal(status):
		reason := fmt.Sprintf("answered %d", status)
		return 0, &peerError{reason: reason, notNode: status/100 != 5}
	case !isObject(data):
		return 0, &peerError{reason: notObject, notNode: true}
	case refusal(status):
		return status, nil
	}
	return 0, nil
}

// refusal reports whether status is one a node refuses an announce with:
// 503 when it cannot check us now (no check slot in time, shutting down),
// which an attacker that holds its slots must not turn into its peers
// dropping it.
func refusal(status int) bool {
	switch status {
	case http.StatusForbidden, http.StatusConflict, http.StatusUnprocessableEntity, http.StatusTooManyRequests,
		http.StatusServiceUnavailable:
		return true
	}
	return false
}

// remove asks n to drop this node: DELETE /nodes/ of itself, when it leaves.
func (c *peerClient) remove(ctx context.Context, n Node) error {
	self, _ := json.Marshal(c.self)
	status, _, err := c.call(ctx, http.MethodDelete, n, "/nodes/", self)
	if err == nil && status/100 != 2 {
		err = &peerError{reason: fmt.Sprintf("answered %d", status)}
	}
	return err
}

// list fetches n's known nodes: a random sample of at most sample of them
// (GET /nodes/?sample=N), or all if sample is 0, and at most sample (or
// maxListEntries) from an answer of at most maxListBody bytes
// (hostilelists.go). Entries that are not valid nodes are dropped, and so
// are repeats and those that n could not honestly know (relayable):
// another host cannot make this process call its own services, or its
// network's, nor weigh one entry as many.
func (c *peerClient) list(ctx context.Context, n Node, sample int) ([]Node, error) {
	path := "/nodes/"
	if sample > 0 {
		path += "?sample=" + strconv.Itoa(sample)
	}
	status, data, err := c.call(ctx, http.MethodGet, n, path, nil)
	if err != nil {
		return nil, err
	}
	if status/100 != 2 {
		return nil, &peerError{reason: fmt.Sprintf("answered %d", status)}
	}
	if len(data) > maxListBody {
		return nil, &peerError{reason: fmt.Sprintf("answer over %d bytes", maxListBody)}
	}
	want := maxListEntries
	if sample > 0 {
		want = sample // a process that ignores ?sample= is cut short: the rest is not even parsed
	}
	nodes, _ := parseNodes(data, want)
	if nodes == nil { // a node answers GET /nodes/ with an array, if an empty one
		return nil, &peerError{reason: "not a JSON array of nodes", notNode: true}
	}
	seen := map[Node]bool{}
	nodes = slices.DeleteFunc(nodes, func(m Node) bool {
		again := seen[m]
		seen[m] = true
		return again || !relayable(n.IP, m)
	})
	return nodes, nil
}
