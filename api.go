package main

// The blog's five endpoints, which both roles serve: GET / (are you
// there?), POST / (a node announces itself), and GET, POST and DELETE
// /nodes/ (the list, the operator's add, and a remove). Each handler reads
// as the blog's behaviour; the rules that guard it are named calls into the
// defence files.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"path"
	"strconv"
	"strings"
	"time"
)

// api is what a process's handlers share.
type api struct {
	table      *Table
	checks     *quota                // the connect-back checks (connectback.go)
	local      func(netip.Addr) bool // the addresses of this host (loopback, its own), the operator's
	maxInbound int                   // a node's cap on peers taken by announce (hubs.go); seed: 0
	holdOff    time.Duration         // how long an answer holds for a DELETE (answerHolds)
	log        *slog.Logger
}

// addRoutes registers the whole API. Wrong methods and unknown paths get
// JSON errors too, so every rejection reads the same way.
func addRoutes(mux *http.ServeMux, a api) {
	list := handleList(a)
	mux.Handle("GET /{$}", observed(handleCheck(a.table)))
	mux.Handle("POST /{$}", observed(handleAnnounce(a)))
	mux.Handle("/{$}", methodNotAllowed("GET, HEAD, POST"))
	mux.Handle("GET /nodes/{$}", list)
	mux.Handle("POST /nodes/{$}", handleAdd(a, list))
	mux.Handle("DELETE /nodes/{$}", handleRemove(a, list))
	mux.Handle("/nodes/{$}", methodNotAllowed("GET, HEAD, POST, DELETE"))
	mux.Handle("/", notFound())
}

// newAPI is the API of a process, as its flags say: serve and the
// simulation both build theirs with it.
func newAPI(cfg config, t *Table, q *quota, log *slog.Logger) api {
	holdOff := answerHolds(time.Duration(cfg.interval), time.Duration(cfg.timeout))
	return api{table: t, checks: q, local: hostAddrs(), maxInbound: inboundCap(cfg), holdOff: holdOff, log: log}
}

// handler serves the API.
func (a api) handler() http.Handler {
	mux := http.NewServeMux()
	addRoutes(mux, a)
	return sameOrigin(cleaned(mux))
}

// handleCheck answers GET /, the blog's check that we are alive, with {}.
// It notes who checked, if the caller says (checkedby.go).
func handleCheck(t *Table) http.Handler {
	body := []byte("{}\n")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if checker, ok := checkerOf(r); ok {
			t.CheckedBy(checker)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
}

// handleAnnounce is POST /: a node announces itself, and is added once it
// answers GET / itself (the connect-back check), so that nobody can fill
// the table with addresses where no node runs. The blog added whatever it
// was sent. The answer is the node, once it is on disk.
func handleAnnounce(a api) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, ok := readNode(w, r, a.table.self)
		if !ok {
			return
		}
		src, operator := remoteIP(r), a.operator(r)
		known := a.table.Has(n) // decided once: a known node has no room to make
		crowded, status, err := a.admit(src, operator, n, known)
		if err != nil {
			writeError(w, status, err.Error())
			return
		}
		// A known node's announce changes nothing: the sweep checks it,
		// whoever calls from its address.
		if !known {
			err := a.checkNewcomer(r.Context(), src, operator, n, crowded)
			msg := fmt.Sprintf("could not reach you at %s: %v", n, err)
			if checkFailed(w, r, err, http.StatusUnprocessableEntity, msg) {
				return
			}
		}
		add := func() ([]Node, error) { return a.table.AddAnnounced(a.maxInbound, n) }
		switch {
		case known:
			add = func() ([]Node, error) { return nil, a.table.Keep(n) }
		case crowded != nil: // the incumbent failed its check, and n passed
			add = func() ([]Node, error) { return a.table.Replace(crowded.incumbent, n) }
		}
		if writeAdd(w, n, add, a.log) {
			if !known {
				a.table.Answered(n, false) // it has just answered: a DELETE costs no check of its own
			}
			writeJSON(w, http.StatusOK, n)
		}
	})
}

// admit is every rule that an announce of n from src must pass before any
// check, and the status it is refused with:
//   - 409 when the table has no room for n (Table.WouldRefuse): n's address
//     has -hm entries (errHostFull, groups.go); a node has taken its cap of
//     peers by announce and no group of them gives way (errEnough, hubs.go,
//     room.go); a node is full to -m, or a full seed has nothing to evict
//     for n, a loopback or link-local newcomer or a table of them (errFull,
//     room.go); a full seed otherwise makes room. This comes before the
//     caller's address is looked at, so that a node behind NAT, which every
//     peer refuses, still learns which ones have room;
//   - 403 when a caller on another host announces anyone but itself, or a
//     link-local address (mayAnnounce, connectback.go). A web page of
//     another origin gets 403 before any handler runs (sameOrigin,
//     webpages.go).
//
// A full seed whose largest group is n's does not refuse yet: crowded
// names the incumbent that must fail a check first, and the 409 comes if it
// answers, or if it times out once timeouts have removed their share of the
// round (testBeforeEvict, room.go). A known node (known) has no room to
// make, and its announce adds nothing: 503 if it left meanwhile
// (Table.Keep), since it comes back only by a checked announce. The add
// refuses with 409 again, under the table's lock, if other announces took
// the room meanwhile (writeAdd); then nothing has changed.
func (a api) admit(src netip.Addr, operator bool, n Node, known bool) (crowded *crowdedError, status int,
	err error) {
	if !known {
		err = a.table.WouldRefuse(a.maxInbound, n)
	}
	if err != nil && !errors.As(err, &crowded) {
		return nil, http.StatusConflict, err
	}
	if err := mayAnnounce(src, operator, n); err != nil {
		return nil, http.StatusForbidden, err
	}
	return crowded, 0, nil
}

// checkNewcomer is the connect-back check of n, announced from src (the
// operator's if operator): in a crowded table, the incumbent's first
// (testBeforeEvict).
func (a api) checkNewcomer(ctx context.Context, src netip.Addr, operator bool, n Node,
	crowded *crowdedError) error {
	if crowded != nil {
		return testBeforeEvict(ctx, a, src, operator, n, crowded)
	}
	return a.checks.verify(ctx, src, operator, n, false)
}

// operator reports whether r comes from the operator: from this host
// (local), naming an IP address or localhost as its Host, not the name of
// a web page that resolves to this host (webpages.go).
func (a api) operator(r *http.Request) bool { return a.local(remoteIP(r)) && namedByAddress(r) }

// handleList is GET /nodes/: the table, served from memory, the bytes last
// written to disk, less the entries that a caller on another host may not
// take from us (audience). With ?sample=N it serves at most N (up to
// maxSample) picked at random, a group at a time (groups.go): what a
// joining node needs, in its group's turn (quota.go). The blog's client
// sends no query, and gets the whole list.
func handleList(a api) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		to := audienceOf(a.operator(r), remoteIP(r))
		var body []byte
		switch {
		case r.URL.RawQuery != "" && r.URL.Query().Has("sample"): // no parsing for the blog's client
			n, err := strconv.Atoi(r.URL.Query().Get("sample"))
			if err != nil || n < 0 {
				writeError(w, http.StatusBadRequest, "sample must be a whole number of nodes")
				return
			}
			draw := func() []byte { return a.table.Sample(min(n, maxSample), to) }
			var done func()
			if body, done = a.checks.sample(r.Context(), callerGroup(remoteIP(r)), draw); body == nil {
				return
			}
			defer done() // the group's turn ends with the answer written (quota.go)
		default:
			body = a.table.BodyFor(to)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	})
}

// handleAdd is POST /nodes/: it adds a node without checking it, an
// operator's tool, for callers on this host only. The answer is the list.
func handleAdd(a api, list http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.operator(r) {
			writeError(w, http.StatusForbidden,
				"only callers on this host may add nodes directly; announce yourself with POST / instead")
			return
		}
		n, ok := readNode(w, r, a.table.self)
		if !ok {
			return
		}
		if writeAdd(w, n, func() ([]Node, error) { return a.table.Add(n) }, a.log) {
			list.ServeHTTP(w, r)
		}
	})
}

// handleRemove is DELETE /nodes/: it removes a node, at once for the
// operator (this host); for anyone else, the node's own address included,
// once it no longer answers (silence.go), and only if it was an entry
// when asked: a node absent then and added meanwhile, by its own checked
// announce, stays. The answer is the list.
func handleRemove(a api, list http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, ok := readNode(w, r, a.table.self)
		if !ok {
			return
		}
		if !a.operator(r) {
			if !a.table.Has(n) {
				list.ServeHTTP(w, r) // nothing to remove
				return
			}
			err := gone(r.Context(), a, remoteIP(r), n)
			if checkFailed(w, r, err, http.StatusForbidden, fmt.Sprint(err)) {
				return
			}
		}
		if _, err := a.table.Remove(n); err != nil {
			a.log.Error("remove", "node", n, "err", err)
			writeError(w, http.StatusInternalServerError, "could not save the table")
			return
		}
		list.ServeHTTP(w, r)
	})
}

// checkFailed answers a request whose check gave err, if any, and says so:
// 409 for an incumbent that answered, 503 shutting down, no slot in time
// or this host unable to call out (ownfaults.go), 429 too busy, else
// status and msg.
func checkFailed(w http.ResponseWriter, r *http.Request, err error, status int, msg string) bool {
	switch {
	case err == nil:
		return false
	case errors.As(err, new(*crowdedError)):
		writeError(w, http.StatusConflict, err.Error())
	case r.Context().Err() != nil:
		writeError(w, http.StatusServiceUnavailable, "shutting down; try again later")
	case errors.Is(err, errBusy):
		writeError(w, http.StatusTooManyRequests, err.Error())
	case errors.Is(err, errNoSlot), errors.Is(err, errLate):
		w.Header().Set("Retry-After", retryAfter)
		writeError(w, http.StatusServiceUnavailable, err.Error())
	case ours(err):
		w.Header().Set("Retry-After", retryAfter)
		writeError(w, http.StatusServiceUnavailable, "this process cannot check you now; try again later")
	default:
		writeError(w, status, msg)
	}
	return true
}

// writeAdd adds n with add, and reports whether it is in the table, having
// answered the request with an error if not.
func writeAdd(w http.ResponseWriter, n Node, add func() ([]Node, error), log *slog.Logger) bool {
	_, err := add()
	switch {
	case err == nil:
		return true
	case errors.Is(err, errFull), errors.Is(err, errEnough), errors.Is(err, errHostFull),
		errors.As(err, new(*crowdedError)):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, errLeft): // not full: the caller should not back off, but announce again
		w.Header().Set("Retry-After", retryAfter)
		writeError(w, http.StatusServiceUnavailable, err.Error())
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

// methodNotAllowed answers a known path asked with the wrong method.
func methodNotAllowed(allow string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		msg := fmt.Sprintf("%s is not allowed on %s; use %s", r.Method, r.URL.Path, allow)
		writeError(w, http.StatusMethodNotAllowed, msg)
	})
}

// notFound answers paths outside the API.
func notFound() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		msg := fmt.Sprintf("no such endpoint %s; see / and /nodes/", r.URL.Path)
		writeError(w, http.StatusNotFound, msg)
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
