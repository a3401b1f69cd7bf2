package main

// The data file on disk: read at start, replaced atomically, in a directory
// that is locked (lock_unix.go, lock_windows.go) and made again if someone
// removes it; and the JSON of a list of nodes, the file's and the API's
// alike, read token by token so that a hostile list costs little.

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// errLocked means another process holds the data directory's lock.
var errLocked = errors.New("in use by another process")

// Close releases the lock. The table must not be used after.
func (t *Table) Close() error {
	if t.lock == nil {
		return nil
	}
	return t.lock.Close() // closing the descriptor releases the lock
}

// load reads the file into an empty table and rewrites it if the table it
// gives differs from its bytes (duplicates, this process itself, another layout).
func (t *Table) load() error {
	temps, _ := filepath.Glob(t.path + ".tmp-*")
	for _, tmp := range temps {
		os.Remove(tmp) // an unfinished write from a crash; the file itself is intact
	}
	data, err := os.ReadFile(t.path) // nil if missing
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if data != nil {
		nodes, err := parseNodes(data, t.max+1) // +1: the file may list this process
		if errors.Is(err, errTooMany) {
			return fmt.Errorf("%s holds more than -m %d nodes: raise -m", t.path, t.max)
		} else if err != nil {
			return fmt.Errorf("%s: %w; fix or remove the file", t.path, err)
		}
		for _, n := range nodes {
			if n != t.self && !t.known[n] {
				t.insert(n)
			}
		}
		if len(t.nodes) > t.max {
			return fmt.Errorf("%s holds %d nodes, more than -m %d: raise -m", t.path, len(t.nodes), t.max)
		}
	}
	body := encodeNodes(t.nodes)
	t.publish(t.nodes, body)
	if !bytes.Equal(body, data) {
		return writeFile(t.path, body)
	}
	return nil
}

// recreate makes the data directory again after someone removed it, and
// locks the new one. Only the caller writing the file calls it.
func (t *Table) recreate() error {
	dir := filepath.Dir(t.path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	lock, err := lockDir(dir, filepath.Base(t.path))
	if err != nil {
		return err
	}
	t.lock.Close()
	t.lock = lock
	return nil
}

// writeFile replaces path with data so that a crash at any moment leaves
// either the old file or the new one, never a mix: write a temp file beside
// it, sync it, rename it over path, and sync the directory.
func writeFile(path string, data []byte) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

// writeGap is the least time between two writes of the file: at most 4 a
// second, whatever callers do (a 1,000-entry file is 62 kB: 250 kB/s).
const writeGap = 250 * time.Millisecond

// save returns once change number upTo is on disk. The first caller to find no
// write under way writes everything changed so far, after waiting out
// writeGap since the last write; callers arriving meanwhile wait, and the
// next of them writes all their changes at once (group commit). t.mu is
// held on entry and exit, and released while waiting and writing.
func (t *Table) save(upTo uint64) error {
	for t.saved < upTo {
		if t.path == "" { // in memory only: nothing to write; encode when asked
			t.saved = t.changes
			t.body.Store(nil)
			t.public.Store(nil)
			return nil
		}
		if t.writing {
			t.written.Wait()
			continue
		}
		t.writing = true
		if wait := t.gap - time.Since(t.wrote); wait > 0 {
			// Coalesce: whatever changes meanwhile goes in this one write.
			t.mu.Unlock()
			time.Sleep(wait)
			t.mu.Lock()
		}
		batch, nodes := t.changes, slices.Clone(t.nodes)
		t.mu.Unlock()
		body := encodeNodes(nodes)
		err := writeFile(t.path, body)
		if errors.Is(err, fs.ErrNotExist) {
			if err = t.recreate(); err == nil {
				err = writeFile(t.path, body)
			}
		}
		t.mu.Lock()
		t.writing = false
		t.wrote, t.writes = time.Now(), t.writes+1
		t.written.Broadcast()
		if err != nil {
			return fmt.Errorf("save %s: %w", t.path, err)
		}
		t.saved = batch
		t.publish(nodes, body)
	}
	return nil
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

// parseNodes reads a JSON array of nodes, at most maxEntries entries of it. It
// returns the valid ones in order and, if some entries were not valid nodes
// or there were more than maxEntries, an error saying so. One decoder reads the
// whole array, so what it allocates grows with the bytes it reads.
func parseNodes(data []byte, maxEntries int) ([]Node, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
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
