package main

// Hostile lists: what stops a peer's list from costing more than a list
// should. A list is read from the file, from request bodies and from
// peers, one decoder token by token, so that a hostile entry costs a few
// small allocations, never a map or a decoder per entry; at most
// maxListEntries entries are parsed, from at most maxListBody bytes, and a
// sample only up to its size (peerClient.list). 1 MiB of junk entries: a
// round of 26 ms, 21.6 MB peak (BenchmarkHostileLists, TestListParsingIsBounded,
// FuzzParseNodes). Request bodies are strict: exactly one Node, each key
// once, nothing after it (FuzzDecodeNode).

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// exampleNode is a node as the blog writes one, for error messages.
const exampleNode = `{"ip_address": "127.0.0.1", "port": 55000}`

var (
	errNotNode = errors.New(`a node must be a JSON object like ` + exampleNode)
	errNotList = errors.New("not a JSON array of nodes")
	errTooMany = errors.New("too many entries")
	errBroken  = errors.New("not JSON")
)

// parseNode reads one Node from a single JSON object holding exactly the keys
// ip_address and port, each once.
func parseNode(raw []byte) (Node, error) {
	n, err := nextNode(newDecoder(raw))
	if errors.Is(err, errBroken) {
		return Node{}, errNotNode
	}
	return n, err
}

// newDecoder reads data for nextNode, numbers as json.Number.
func newDecoder(data []byte) *json.Decoder {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return dec
}

// nextNode reads the next JSON value from dec (a newDecoder) as a Node. It
// reads the value token by token, so a hostile entry costs a few small
// allocations, never a map. If the value is not a valid Node it has still read all of it, so that
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
	var ipSeen, portSeen bool // each key once, whatever its value, null included
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return Node{}, fmt.Errorf("%w: %w", errBroken, err)
		}
		key, _ := tok.(string)
		value, err := dec.Token()
		if err != nil {
			return Node{}, fmt.Errorf("%w: %w", errBroken, err)
		}
		if d, ok := value.(json.Delim); ok { // an object or an array: read to its end
			if err := skip(dec, d, nil); err != nil {
				return Node{}, err
			}
		}
		switch {
		case bad != nil:
		case key == "ip_address" && !ipSeen:
			ipSeen = true
			ip, bad = stringValue(key, value)
		case key == "port" && !portSeen:
			portSeen = true
			port, bad = intValue(key, value)
		case key == "ip_address" || key == "port":
			bad = fmt.Errorf("%s appears twice", key)
		default:
			bad = fmt.Errorf("unknown field %q: a node has only ip_address and port", key)
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
	addr, err := parseIP(*ip)
	if err != nil {
		return Node{}, fmt.Errorf("ip_address %w", err)
	}
	if *port < 1 || *port > 65535 {
		return Node{}, fmt.Errorf("port %d is outside 1-65535", *port)
	}
	n := Node{IP: addr, Port: uint16(*port)}
	return n, n.Valid()
}

// stringValue is the string that value, key's, holds; nil for null.
func stringValue(key string, value json.Token) (*string, error) {
	switch v := value.(type) {
	case nil:
		return nil, nil
	case string:
		return &v, nil
	}
	return nil, fmt.Errorf("%s has the wrong type", key)
}

// intValue is the whole number that value, key's, holds; nil for null.
// The decoder gives numbers as json.Number (UseNumber), so that a number
// past an int or with a fraction is refused, not rounded.
func intValue(key string, value json.Token) (*int, error) {
	switch v := value.(type) {
	case nil:
		return nil, nil
	case json.Number:
		if n, err := strconv.Atoi(string(v)); err == nil {
			return &n, nil
		}
	}
	return nil, fmt.Errorf("%s has the wrong type", key)
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
		return Node{}, errors.New(`body is empty: send a node such as ` + exampleNode)
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

// parseNodes reads a JSON array of nodes, at most maxEntries entries of it. It
// returns the valid ones in order and, if some entries were not valid nodes
// or there were more than maxEntries, an error saying so. One decoder reads the
// whole array, so what it allocates grows with the bytes it reads.
func parseNodes(data []byte, maxEntries int) ([]Node, error) {
	dec := newDecoder(data)
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, errNotList
	}
	nodes := []Node{}
	var bad error
	for i := 0; dec.More(); i++ {
		if i == maxEntries {
			return nodes, fmt.Errorf("%w: more than %d", errTooMany, maxEntries)
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
