package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"path"
	"strconv"
	"strings"
)

// addRoutes registers the whole API. Wrong methods and unknown paths get
// JSON errors too, so every rejection reads the same way. local tells the
// callers on this host (the operator) from other hosts; inbound, if not 0,
// is how many peers a node takes by their announce (see inboundCap).
func addRoutes(mux *http.ServeMux, t *Table, v *verifier, local func(netip.Addr) bool, maxInbound int, log *slog.Logger) {
	mux.Handle("GET /{$}", observed(handleCheck(t)))
	mux.Handle("POST /{$}", observed(handleAnnounce(t, v, local, maxInbound, log)))
	mux.Handle("/{$}", methodNotAllowed("GET, HEAD, POST"))
	mux.Handle("GET /nodes/{$}", handleList(t, local))
	mux.Handle("POST /nodes/{$}", handleAdd(t, local, log))
	mux.Handle("DELETE /nodes/{$}", handleRemove(t, v, local, log))
	mux.Handle("/nodes/{$}", methodNotAllowed("GET, HEAD, POST, DELETE"))
	mux.Handle("/", notFound())
}

// newAPI is the API of a process, as its flags say: serve and the
// simulation both build theirs with it.
func newAPI(cfg config, t *Table, v *verifier, local func(netip.Addr) bool, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	addRoutes(mux, t, v, local, inboundCap(cfg), log)
	return cleaned(mux)
}

// cleaned sends a path with // or .. in it, or /nodes without its slash,
// to the clean one with a JSON 307, which keeps the method and the body;
// the mux would answer in HTML.
func cleaned(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := path.Clean(r.URL.Path)
		if strings.HasSuffix(r.URL.Path, "/") && p != "/" || p == "/nodes" {
			p += "/"
		}
		if p == r.URL.Path {
			h.ServeHTTP(w, r)
			return
		}
		if r.URL.RawQuery != "" {
			p += "?" + r.URL.RawQuery
		}
		w.Header().Set("Location", p)
		writeJSON(w, http.StatusTemporaryRedirect, map[string]string{"location": p})
	})
}

// handleCheck answers the check that we are alive, and notes who checked,
// if the caller says in fromHeader, from the address it names.
func handleCheck(t *Table) http.Handler {
	body := []byte("{}\n")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if from, err := netip.ParseAddrPort(r.Header.Get(fromHeader)); err == nil && from.Addr().Unmap() == remoteIP(r) {
			t.CheckedBy(Node{IP: from.Addr().Unmap().String(), Port: int(from.Port())})
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
}

// handleAnnounce adds the sender of POST / once it answers GET / itself, so
// that nobody can fill the table with addresses where no node runs. A caller
// on another host may announce only itself: the address it calls from. So no
// host can make this process call a third party, or its own loopback. A node
// takes at most inbound peers this way, so that early joiners do not become
// hubs; the seed (inbound 0) takes all, up to -m.
func handleAnnounce(t *Table, v *verifier, local func(netip.Addr) bool, maxInbound int, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, ok := readNode(w, r, t.self)
		if !ok {
			return
		}
		var crowded *crowdedError
		if err := t.WouldRefuse(maxInbound, n); err != nil && !t.Has(n) && !errors.As(err, &crowded) {
			// Before the caller's address is looked at: a node behind NAT,
			// which every peer refuses, still learns which ones have room.
			writeError(w, http.StatusConflict, err.Error())
			return
		}
		src := remoteIP(r)
		if !local(src) {
			switch {
			case netip.MustParseAddr(n.IP) != src:
				writeError(w, http.StatusForbidden, fmt.Sprintf("announce only yourself: this call came from %s", src))
				return
			case n.scoped():
				writeError(w, http.StatusForbidden, "link-local addresses are not taken from other hosts")
				return
			}
		}
		if !t.Has(n) { // a known node's announce changes nothing: the sweep checks it, whoever calls from its address
			var err error
			if crowded != nil { // test before evict: while the incumbent answers, the newcomer need not be checked
				switch err = v.answering(r.Context(), src, crowded.incumbent); {
				case err == nil:
					writeError(w, http.StatusConflict, crowded.Error())
					return
				case !errors.Is(err, errBusy) && !errors.Is(err, errNoSlot) && r.Context().Err() == nil:
					err = nil
				}
			}
			if err == nil {
				err = v.verify(r.Context(), src, local(src), n)
			}
			if checkFailed(w, r, err, http.StatusUnprocessableEntity, fmt.Sprintf("could not reach you at %s: %v", n, err)) {
				return
			}
			if crowded != nil { // it failed its check, and the newcomer passed: its place is the newcomer's
				if _, err := t.Remove(crowded.incumbent); err != nil {
					log.Error("remove", "node", crowded.incumbent, "err", err)
				}
			}
		}
		if writeAdd(w, t, maxInbound, n, log) {
			writeJSON(w, http.StatusOK, n)
		}
	})
}

// handleList serves the table from memory: the bytes last written to disk,
// less loopback and link-local entries for callers on other hosts. With
// ?sample=N it serves at most N (up to maxSample) picked at random: what a
// joining node needs. So that a flood of samples cannot take every core,
// one is drawn at a time, and callers of one group wait for each other's
// answer to be written.
func handleList(t *Table, local func(netip.Addr) bool) http.Handler {
	sampling := make(chan struct{}, 1)
	turns := &sampleTurns{of: map[netip.Prefix]*groupTurn{}}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		here := local(remoteIP(r))
		body := t.Body()
		if !here {
			body = t.PublicBody()
		}
		if r.URL.RawQuery != "" && r.URL.Query().Has("sample") { // the blog's client sends no query: no parsing for it
			n, err := strconv.Atoi(r.URL.Query().Get("sample"))
			if err != nil || n < 0 {
				writeError(w, http.StatusBadRequest, "sample must be a whole number of nodes")
				return
			}
			done := turns.take(r.Context(), callerGroup(remoteIP(r)))
			if done == nil {
				return
			}
			defer done()
			select {
			case sampling <- struct{}{}:
			case <-r.Context().Done():
				return
			}
			body = t.Sample(min(n, maxSample), !here)
			<-sampling
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	})
}

// handleAdd adds a node without checking it: an operator's tool, for callers on this host only.
func handleAdd(t *Table, local func(netip.Addr) bool, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !local(remoteIP(r)) {
			writeError(w, http.StatusForbidden, "only callers on this host may add nodes directly; announce yourself with POST / instead")
			return
		}
		n, ok := readNode(w, r, t.self)
		if !ok {
			return
		}
		if writeAdd(w, t, 0, n, log) {
			handleList(t, local).ServeHTTP(w, r)
		}
	})
}

// handleRemove removes a node: at once for the operator (this host); for
// anyone else, the node's own address included, once it no longer answers
// (verifier.gone). A leaving node closes its listener before its goodbye,
// so that is believed at once; nobody, not even a neighbour behind its NAT,
// can remove a live node.
func handleRemove(t *Table, v *verifier, local func(netip.Addr) bool, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, ok := readNode(w, r, t.self)
		if !ok {
			return
		}
		if src := remoteIP(r); !local(src) && t.Has(n) {
			if err := v.gone(r.Context(), src, n); checkFailed(w, r, err, http.StatusForbidden, fmt.Sprint(err)) {
				return
			}
		}
		if _, err := t.Remove(n); err != nil {
			log.Error("remove", "node", n, "err", err)
			writeError(w, http.StatusInternalServerError, "could not save the table")
			return
		}
		handleList(t, local).ServeHTTP(w, r)
	})
}

// checkFailed answers a request whose check gave err, if any, and says so:
// 503 shutting down or no slot in time, 429 too busy, else status and msg.
func checkFailed(w http.ResponseWriter, r *http.Request, err error, status int, msg string) bool {
	switch {
	case err == nil:
		return false
	case r.Context().Err() != nil:
		writeError(w, http.StatusServiceUnavailable, "shutting down; try again later")
	case errors.Is(err, errBusy):
		writeError(w, http.StatusTooManyRequests, err.Error())
	case errors.Is(err, errNoSlot):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		writeError(w, status, msg)
	}
	return true
}

// writeAdd adds n, unless the table holds inbound nodes (0: no cap but -m),
// and reports whether it is in the table, having answered the request with
// an error if not.
func writeAdd(w http.ResponseWriter, t *Table, maxInbound int, n Node, log *slog.Logger) bool {
	_, err := t.AddAnnounced(maxInbound, n)
	switch {
	case err == nil:
		return true
	case errors.Is(err, errFull), errors.Is(err, errEnough), errors.Is(err, errHostFull), errors.As(err, new(*crowdedError)):
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

// remoteIP is the caller's address, or the zero Addr if it cannot be parsed.
func remoteIP(r *http.Request) netip.Addr {
	ap, _ := netip.ParseAddrPort(r.RemoteAddr) // the zero AddrPort if not
	return ap.Addr().Unmap()
}
