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
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
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

var (
	errSelf = errors.New("that is this process's own address; it never lists itself")
	errFull = errors.New("the table is full (see -m)")
)

// Table is the set of known nodes, in the order learned, kept in memory and in
// one file. Every change is on disk before the call that made it returns, and
// changes that arrive while a write is under way share the next write.
type Table struct {
	path string
	lock *os.File // holds the flock on path+".lock" for the whole run
	self Node
	max  int

	mu      sync.Mutex
	written *sync.Cond // broadcast when a write ends
	nodes   []Node
	known   map[Node]bool
	changes uint64 // changes made in memory, counted from start
	saved   uint64 // changes on disk
	writing bool   // a caller is writing the file; the others wait for it

	body atomic.Pointer[[]byte] // the bytes on disk, served by GET /nodes/
}

// openTable locks dir/file, removes temp files a crash may have left, and loads
// the nodes. A missing file is an empty table; an unreadable or corrupt one is
// an error and is left as it is.
func openTable(dir, file string, self Node, max int) (*Table, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, file)
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s is in use by another process (%s is locked)", path, lock.Name())
		}
		return nil, fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	t := &Table{path: path, lock: lock, self: self, max: max, known: map[Node]bool{}}
	t.written = sync.NewCond(&t.mu)
	if err := t.load(); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
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
		nodes, err := parseNodes(data)
		if err != nil {
			return fmt.Errorf("%s: %w; fix or remove the file", t.path, err)
		}
		for _, n := range nodes {
			if n != t.self && !t.known[n] {
				t.known[n] = true
				t.nodes = append(t.nodes, n)
			}
		}
		if len(t.nodes) > t.max {
			return fmt.Errorf("%s holds %d nodes, more than -m %d: raise -m", t.path, len(t.nodes), t.max)
		}
	}
	body := encodeNodes(t.nodes)
	t.body.Store(&body)
	if !bytes.Equal(body, data) {
		return writeFile(t.path, body)
	}
	return nil
}

// Close releases the lock. The table must not be used after.
func (t *Table) Close() error {
	return t.lock.Close() // closing the descriptor releases the flock
}

// List returns a copy of the nodes in memory, in the order learned.
func (t *Table) List() []Node {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.nodes)
}

// Len is the number of nodes in memory.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.nodes)
}

// Has reports whether n is in the table.
func (t *Table) Has(n Node) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.known[n]
}

// Body is the JSON array on disk: what GET /nodes/ answers.
func (t *Table) Body() []byte { return *t.body.Load() }

// Add adds the nodes it does not know yet and returns how many it added, once
// the table it leaves is on disk. It returns errSelf or errFull if it had to
// skip a node for that reason.
func (t *Table) Add(nodes ...Node) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var skipped error
	added := 0
	for _, n := range nodes {
		switch {
		case n == t.self:
			skipped = errSelf
		case t.known[n]:
		case len(t.nodes) >= t.max:
			skipped = errFull
		default:
			t.known[n] = true
			t.nodes = append(t.nodes, n)
			added++
		}
	}
	if added > 0 {
		t.changes++
	}
	// Wait even if nothing changed: a node found here may still be on its way to disk.
	return added, cmp.Or(t.save(t.changes), skipped)
}

// Remove removes the given nodes and returns how many it removed, once the
// table it leaves is on disk.
func (t *Table) Remove(nodes ...Node) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	gone := map[Node]bool{}
	for _, n := range nodes {
		if t.known[n] {
			gone[n] = true
			delete(t.known, n)
		}
	}
	if len(gone) > 0 {
		t.nodes = slices.DeleteFunc(t.nodes, func(n Node) bool { return gone[n] })
		t.changes++
	}
	return len(gone), t.save(t.changes)
}

// save returns once change number upTo is on disk. The first caller to find no
// write under way writes everything changed so far; callers arriving during
// that write wait, and the next of them writes all their changes at once
// (group commit). t.mu is held on entry and exit, and released while writing.
func (t *Table) save(upTo uint64) error {
	for t.saved < upTo {
		if t.writing {
			t.written.Wait()
			continue
		}
		t.writing = true
		batch, nodes := t.changes, slices.Clone(t.nodes)
		t.mu.Unlock()
		body := encodeNodes(nodes)
		err := writeFile(t.path, body)
		t.mu.Lock()
		t.writing = false
		t.written.Broadcast()
		if err != nil {
			return fmt.Errorf("save %s: %w", t.path, err)
		}
		t.saved = batch
		t.body.Store(&body)
	}
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

const (
	// maxBody bounds request bodies: a Node is under 100 bytes.
	maxBody = 1 << 10
	// maxVerifying bounds the connect-back checks that announces can start at once.
	maxVerifying = 64
)

// addRoutes registers the whole API. Wrong methods and unknown paths get
// JSON errors too, so every rejection reads the same way.
func addRoutes(mux *http.ServeMux, t *Table, verify func(context.Context, Node) error, log *slog.Logger) {
	mux.Handle("GET /{$}", handleCheck())
	mux.Handle("POST /{$}", handleAnnounce(t, verify, log))
	mux.Handle("/{$}", methodNotAllowed("GET, HEAD, POST"))
	mux.Handle("GET /nodes/{$}", handleList(t))
	mux.Handle("POST /nodes/{$}", handleAdd(t, log))
	mux.Handle("DELETE /nodes/{$}", handleRemove(t, log))
	mux.Handle("/nodes/{$}", methodNotAllowed("GET, HEAD, POST, DELETE"))
	mux.Handle("/nodes", http.RedirectHandler("/nodes/", http.StatusTemporaryRedirect))
	mux.Handle("/", notFound())
}

// handleCheck answers the connection check.
func handleCheck() http.Handler {
	body := []byte("{}\n")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
}

// handleAnnounce adds the sender of POST / once it answers GET / itself, so
// that nobody can fill the table with addresses where no node runs.
func handleAnnounce(t *Table, verify func(context.Context, Node) error, log *slog.Logger) http.Handler {
	slots := make(chan struct{}, maxVerifying)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, ok := readNode(w, r, t.self)
		if !ok {
			return
		}
		if !t.Has(n) {
			if t.Len() >= t.max {
				writeError(w, http.StatusConflict, errFull.Error())
				return
			}
			var err error
			select {
			case slots <- struct{}{}:
				err = verify(r.Context(), n)
				<-slots
			case <-r.Context().Done():
			}
			if r.Context().Err() != nil {
				writeError(w, http.StatusServiceUnavailable, "shutting down; announce again later")
				return
			}
			if err != nil {
				writeError(w, http.StatusUnprocessableEntity, fmt.Sprintf("could not reach you at %s: %v", n, err))
				return
			}
		}
		if writeAdd(w, t, n, log) {
			writeJSON(w, http.StatusOK, n)
		}
	})
}

// handleList serves the table from memory: the bytes last written to disk.
func handleList(t *Table) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := t.Body()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	})
}

// handleAdd adds a node without checking it: an operator's tool, for loopback callers only.
func handleAdd(t *Table, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !fromLoopback(r) {
			writeError(w, http.StatusForbidden, "only loopback callers may add nodes directly; announce yourself with POST / instead")
			return
		}
		n, ok := readNode(w, r, t.self)
		if !ok {
			return
		}
		if writeAdd(w, t, n, log) {
			handleList(t).ServeHTTP(w, r)
		}
	})
}

// handleRemove removes a node, for loopback callers and for the node itself leaving.
func handleRemove(t *Table, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, ok := readNode(w, r, t.self)
		if !ok {
			return
		}
		if !fromLoopback(r) && remoteIP(r) != netip.MustParseAddr(n.IP) {
			writeError(w, http.StatusForbidden, "only loopback callers or the node itself may remove a node")
			return
		}
		if _, err := t.Remove(n); err != nil {
			log.Error("remove", "node", n, "err", err)
			writeError(w, http.StatusInternalServerError, "could not save the table")
			return
		}
		handleList(t).ServeHTTP(w, r)
	})
}

// writeAdd adds n and reports whether it is in the table, having answered the
// request with an error if not.
func writeAdd(w http.ResponseWriter, t *Table, n Node, log *slog.Logger) bool {
	_, err := t.Add(n)
	switch {
	case err == nil:
		return true
	case errors.Is(err, errFull):
		writeError(w, http.StatusConflict, err.Error())
	default:
		log.Error("add", "node", n, "err", err)
		writeError(w, http.StatusInternalServerError, "could not save the table")
	}
	return false
}

// readNode decodes the request body as one Node other than self, answering
// 413 or 400 if it cannot.
func readNode(w http.ResponseWriter, r *http.Request, self Node) (Node, bool) {
	n, err := decodeNode(http.MaxBytesReader(w, r.Body, maxBody))
	if err == nil && n == self {
		err = errSelf
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", maxBody))
	case err != nil:
		writeError(w, http.StatusBadRequest, err.Error())
	}
	return n, err == nil
}

// remoteIP is the caller's address, or the zero Addr if it cannot be parsed.
func remoteIP(r *http.Request) netip.Addr {
	ap, _ := netip.ParseAddrPort(r.RemoteAddr) // the zero AddrPort if not
	return ap.Addr().Unmap()
}

// fromLoopback reports whether the request came from this machine.
func fromLoopback(r *http.Request) bool { return remoteIP(r).IsLoopback() }

// methodNotAllowed answers a known path asked with the wrong method.
func methodNotAllowed(allow string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s is not allowed on %s; use %s", r.Method, r.URL.Path, allow))
	})
}

// notFound answers paths outside the API.
func notFound() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint %s; see / and /nodes/", r.URL.Path))
	})
}

// writeError answers {"error": msg}.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// writeJSON answers v as JSON. The header goes first: headers set after WriteHeader are dropped.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, _ := json.Marshal(v) // a Node or a map of strings always encodes
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}
