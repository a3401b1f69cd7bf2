package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// canonical spells the address one way (::ffff:1.2.3.4 as 1.2.3.4, 0::1 as ::1), so that
// one peer is never stored twice. n must be Valid.
func (n Node) canonical() Node {
	n.IP = netip.MustParseAddr(n.IP).Unmap().String()
	return n
}

// parseNode reads one Node from a single JSON object holding exactly the keys
// ip_address and port, and returns it in canonical form.
func parseNode(raw []byte) (Node, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return Node{}, errors.New(`a node must be a JSON object like {"ip_address": "127.0.0.1", "port": 55000}`)
	}
	for key := range fields {
		if key != "ip_address" && key != "port" {
			return Node{}, fmt.Errorf("unknown field %q: a node has only ip_address and port", key)
		}
	}
	var ip *string
	var port *int
	if err := json.Unmarshal(fields["ip_address"], &ip); err != nil || ip == nil {
		return Node{}, errors.New("ip_address is missing or not a string")
	}
	if err := json.Unmarshal(fields["port"], &port); err != nil || port == nil {
		return Node{}, errors.New("port is missing or not an integer")
	}
	n := Node{IP: *ip, Port: *port}
	if err := n.Valid(); err != nil {
		return Node{}, err
	}
	return n.canonical(), nil
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

// parseNodes reads a JSON array of nodes. It returns the valid ones in order
// and, if some entries were not valid nodes, an error naming the first.
func parseNodes(data []byte) ([]Node, error) {
	var raws []json.RawMessage
	if err := json.Unmarshal(data, &raws); err != nil || raws == nil {
		return nil, errors.New("not a JSON array of nodes")
	}
	nodes := make([]Node, 0, len(raws))
	var bad error
	for i, raw := range raws {
		n, err := parseNode(raw)
		if err != nil {
			bad = cmp.Or(bad, fmt.Errorf("entry %d: %w", i, err))
			continue
		}
		nodes = append(nodes, n)
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
