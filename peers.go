package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strconv"
)

// Node is one peer's address, exactly as the blog puts it on the wire.
type Node struct {
	IP   string `json:"ip_address"`
	Port int    `json:"port"`
}

// String gives host:port, with brackets around IPv6 literals.
func (n Node) String() string { return net.JoinHostPort(n.IP, strconv.Itoa(n.Port)) }

// Valid reports why n cannot be a peer's address, or nil if it can.
func (n Node) Valid() error {
	ip, err := netip.ParseAddr(n.IP)
	switch {
	case err != nil:
		return fmt.Errorf("ip_address %q is not an IP address literal", n.IP)
	case ip.Zone() != "":
		return fmt.Errorf("ip_address %q has a zone, which means nothing to other hosts", n.IP)
	case ip.IsUnspecified():
		return fmt.Errorf("ip_address %q is unspecified: give an address others can reach", n.IP)
	case ip.IsMulticast():
		return fmt.Errorf("ip_address %q is a multicast address", n.IP)
	case n.Port < 1 || n.Port > 65535:
		return fmt.Errorf("port %d is outside 1-65535", n.Port)
	}
	return nil
}

// loopback reports whether n is on this host's loopback.
func (n Node) loopback() bool { return netip.MustParseAddr(n.IP).IsLoopback() }

// scoped reports whether n's address means something only on one host or one
// link (loopback or link-local), so that no other host may hand it to us.
// n must be Valid.
func (n Node) scoped() bool {
	ip := netip.MustParseAddr(n.IP)
	return ip.IsLoopback() || ip.IsLinkLocalUnicast()
}

// canonical spells the address one way (::ffff:1.2.3.4 as 1.2.3.4, 0::1 as ::1), so that
// one peer is never stored twice. n must be Valid.
func (n Node) canonical() Node {
	n.IP = netip.MustParseAddr(n.IP).Unmap().String()
	return n
}

var (
	errNotNode = errors.New(`a node must be a JSON object like {"ip_address": "127.0.0.1", "port": 55000}`)
	errNotList = errors.New("not a JSON array of nodes")
	errTooMany = errors.New("too many entries")
	errBroken  = errors.New("not JSON")
)

// maxListEntries bounds the entries read from one list that a peer sends:
// 10,000 nodes take about 610 kB.
const maxListEntries = 10_000

// parseNode reads one Node from a single JSON object holding exactly the keys
// ip_address and port, each once, and returns it in canonical form.
func parseNode(raw []byte) (Node, error) {
	n, err := nextNode(json.NewDecoder(bytes.NewReader(raw)))
	if errors.Is(err, errBroken) {
		return Node{}, errNotNode
	}
	return n, err
}

// nextNode reads the next JSON value from dec as a Node. It reads the value
// token by token, so a hostile entry costs a few small allocations, never a
// map. If the value is not a valid Node it has still read all of it, so that
// a list can go on with the next; only an error wrapping errBroken (the
// input is not JSON) leaves dec unusable.
func nextNode(dec *json.Decoder) (Node, error) {
	tok, err := dec.Token()
	if err != nil {
		return Node{}, fmt.Errorf("%w: %w", errBroken, err)
	}
	if tok != json.Delim('{') {
		return Node{}, skip(dec, tok, errNotNode)
	}
	var ip *string
	var port *int
	var bad error
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return Node{}, fmt.Errorf("%w: %w", errBroken, err)
		}
		var value any = new(json.RawMessage) // skipped
		key, _ := tok.(string)
		switch {
		case bad != nil:
		case key == "ip_address" && ip == nil:
			value = &ip
		case key == "port" && port == nil:
			value = &port
		case key == "ip_address" || key == "port":
			bad = fmt.Errorf("%s appears twice", key)
		default:
			bad = fmt.Errorf("unknown field %q: a node has only ip_address and port", key)
		}
		if err := dec.Decode(value); err != nil {
			var typeErr *json.UnmarshalTypeError
			if !errors.As(err, &typeErr) {
				return Node{}, fmt.Errorf("%w: %w", errBroken, err)
			}
			bad = cmp.Or(bad, fmt.Errorf("%s has the wrong type", key))
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return Node{}, fmt.Errorf("%w: %w", errBroken, err)
	}
	switch {
	case bad != nil:
		return Node{}, bad
	case ip == nil:
		return Node{}, errors.New("ip_address is missing or not a string")
	case port == nil:
		return Node{}, errors.New("port is missing or not an integer")
	}
	n := Node{IP: *ip, Port: *port}
	if err := n.Valid(); err != nil {
		return Node{}, err
	}
	return n.canonical(), nil
}

// skip reads the rest of a value whose first token was tok, and returns err.
func skip(dec *json.Decoder, tok json.Token, err error) error {
	for depth := 0; ; {
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return err
		}
		var tokErr error
		if tok, tokErr = dec.Token(); tokErr != nil {
			return fmt.Errorf("%w: %w", errBroken, tokErr)
		}
	}
}

// decodeNode reads a request body that must hold one node and nothing after it.
// Errors from r, such as *http.MaxBytesError, are wrapped, not replaced.
func decodeNode(r io.Reader) (Node, error) {
	dec := json.NewDecoder(r)
	var raw json.RawMessage
	if err := dec.Decode(&raw); err == io.EOF {
		return Node{}, errors.New(`body is empty: send a node such as {"ip_address": "127.0.0.1", "port": 55000}`)
	} else if err != nil {
		return Node{}, fmt.Errorf("body is not JSON: %w", err)
	}
	if err := dec.Decode(&json.RawMessage{}); err != io.EOF {
		if tooBig := new(http.MaxBytesError); errors.As(err, &tooBig) {
			return Node{}, err
		}
		return Node{}, errors.New("body must hold one JSON object and nothing after it")
	}
	return parseNode(raw)
}

// parseNodes reads a JSON array of nodes, at most limit entries of it. It
// returns the valid ones in order and, if some entries were not valid nodes
// or there were more than limit, an error saying so. One decoder reads the
// whole array, so what it allocates grows with the bytes it reads.
func parseNodes(data []byte, limit int) ([]Node, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, errNotList
	}
	nodes := []Node{}
	var bad error
	for i := 0; dec.More(); i++ {
		if i == limit {
			return nodes, fmt.Errorf("%w: more than %d", errTooMany, limit)
		}
		n, err := nextNode(dec)
		switch {
		case errors.Is(err, errBroken):
			return nil, errNotList
		case err != nil && bad == nil:
			bad = fmt.Errorf("entry %d: %w", i, err)
		case err == nil:
			nodes = append(nodes, n)
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim(']') {
		return nil, errNotList
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errNotList // something after the array
	}
	return nodes, bad
}

// encodeNodes gives the bytes of the nodes file, which are also the body of GET /nodes/.
func encodeNodes(nodes []Node) []byte {
	if len(nodes) == 0 {
		return []byte("[]\n")
	}
	body, err := json.MarshalIndent(nodes, "", "  ")
	if err != nil {
		panic(err) // a []Node always encodes
	}
	return append(body, '\n')
}

// groupOf is the group of n's address, for the rules that keep one address
// allocation from taking more than its share: its IPv4 /16 or its IPv6 /32.
// ok is false for loopback and link-local addresses, which mean something
// on one host or link only: each is a group of its own, and is never
// evicted to make room.
func groupOf(n Node) (g netip.Prefix, ok bool) {
	ip := netip.MustParseAddr(n.IP)
	if ip.IsLoopback() || ip.IsLinkLocalUnicast() {
		return netip.PrefixFrom(ip, ip.BitLen()), false
	}
	bits := 16
	if ip.Is6() {
		bits = 32
	}
	g, _ = ip.Prefix(bits)
	return g, true
}

// balanced picks at most limit of nodes so that groups take turns: a group
// at random among those with nodes left, then one of its nodes at random,
// without repeats. A thousand addresses in one group then weigh as one.
func balanced(nodes []Node, limit int, rng *rand.Rand) []Node {
	byGroup := map[netip.Prefix][]Node{}
	var groups []netip.Prefix
	for _, n := range nodes {
		g, _ := groupOf(n)
		if byGroup[g] == nil {
			groups = append(groups, g)
		}
		byGroup[g] = append(byGroup[g], n)
	}
	picked := make([]Node, 0, min(limit, len(nodes)))
	for len(groups) > 0 && len(picked) < limit {
		i := rng.IntN(len(groups))
		members := byGroup[groups[i]]
		j := rng.IntN(len(members))
		picked = append(picked, members[j])
		members[j] = members[len(members)-1]
		if byGroup[groups[i]] = members[:len(members)-1]; len(members) == 1 {
			groups[i] = groups[len(groups)-1]
			groups = groups[:len(groups)-1]
		}
	}
	return picked
}
