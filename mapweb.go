package main

// -role=map -web: the network map as a live page. A map server crawls from
// the seeds every -u, one crawl at a time, keeps the last map ready as
// JSON, and pushes it to every open page with Server-Sent Events. The page,
// map.html, is embedded in the binary, fetches nothing else, and works out
// for itself what changed between two maps.

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"slices"
	"sync"
	"syscall"
	"time"
)

// mapPage is the page: one HTML file with its script and style inline.
//
//go:embed map.html
var mapPage []byte

// mapView is one crawl's map as /map.json and each event carry it. Nodes
// are the processes that answered, then the entries that did not, each
// with the nodes it lists as indexes into Nodes. The counts are those of
// the one-line summary, over the whole crawl, even when Nodes was cut.
type mapView struct {
	Seq     int       `json:"seq"`     // crawls this server has run, this one included
	Started time.Time `json:"started"` // when this crawl began
	TookMS  float64   `json:"took_ms"` // how long it ran
	Seeds   []string  `json:"seeds"`   // where it began
	Why     string    `json:"why,omitempty"`
	Nodes   []mapNode `json:"nodes"`
	Counts  mapCounts `json:"counts"`
	Cut     mapCut    `json:"cut"`
}

// mapNode is one process that answered, or one entry that did not.
type mapNode struct {
	Addr      string `json:"addr"`
	Answered  bool   `json:"answered"`
	Seed      bool   `json:"seed"`
	Unlisted  bool   `json:"unlisted"`  // no seed, and listed by no peer: only by seeds
	Component int    `json:"component"` // which connected component; -1 if it did not answer
	In        int    `json:"in"`        // processes that list it
	Out       int    `json:"out"`       // entries it lists
	Lists     []int  `json:"lists"`     // the entries it lists that are in Nodes
	Beyond    int    `json:"beyond"`    // the entries it lists that are not: past -m, -hm or limit
}

// mapCut says where the map is less than the network: a list read up to
// the sample bound, addresses -m left unasked, nodes left out of the page.
type mapCut struct {
	Sample    int `json:"sample"`     // the most entries read from one list (maxSample)
	FullLists int `json:"full_lists"` // lists that held that many: there may be more
	Max       int `json:"max"`        // -m, the most processes asked
	Unasked   int `json:"unasked"`    // addresses heard of and not asked, past -m
	Limit     int `json:"limit"`      // the most nodes a map sent to the page holds (maxMapNodes)
	LeftOut   int `json:"left_out"`   // nodes of the crawl not in Nodes
}

// mapServer is the map's state: how to crawl, the last map, and the pages
// watching it. Each page gets a channel of one slot that holds the newest
// map it has not yet been sent, so a slow page never holds up a crawl.
type mapServer struct {
	client       *peerClient
	seeds        []Node
	max, hostMax int
	draw         bool // /map.mmd draws the graph past maxDrawn, as -draw
	seq          int  // crawls run: only loop crawls, one at a time

	mu       sync.Mutex
	view     []byte // the last map as JSON; nil until the first crawl ends
	mmd      []byte // the same as -role=map prints it
	watchers map[chan []byte]bool
}

// newMapServer is the map server of -role=map -web, as the flags say.
func newMapServer(cfg config, seeds []Node) *mapServer {
	return &mapServer{client: newPeerClient(time.Duration(cfg.timeout), Node{}), seeds: seeds, max: cfg.max,
		hostMax: cfg.hostMax, draw: cfg.draw, watchers: map[chan []byte]bool{}}
}

// runMapWeb is -role=map -web: it serves the page at -web, and crawls from
// the seeds every -u until ctx is done. It listens before the first crawl,
// so that a port in use is said at once, and a page opened early shows the
// map as soon as the crawl ends.
func runMapWeb(ctx context.Context, cfg config, log *slog.Logger) error {
	seeds, err := bootstrapSeeds(cfg)
	if err != nil {
		return err
	}
	ln, err := listenWeb(cfg.web)
	if err != nil {
		return err
	}
	s := newMapServer(cfg, seeds)
	srv := &http.Server{
		Handler:           mapRoutes(s),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      mapWriteTimeout, // the event stream moves it on before each write
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeader, // as the API's: the page sends small requests
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	// Requests run under their own context, cancelled at shutdown: an event
	// stream never ends by itself, and Shutdown waits for every request.
	requests, stopRequests := context.WithCancel(context.Background())
	defer stopRequests()
	srv.BaseContext = func(net.Listener) context.Context { return requests }
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	go func() { stop(srv.Serve(boundedListener{ln, newQuota(nil, 0)})) }()
	addr := ln.Addr().String()
	log.Info("started", "role", "map", "address", addr, "page", "http://"+addr+"/",
		"seeds", names(seeds))

	s.loop(ctx, time.Duration(cfg.interval), log)

	stopRequests()
	shutdown, cancel := context.WithTimeout(context.Background(), shutdownWait)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		log.Warn("requests still running at exit", "err", err)
		srv.Close()
	}
	if err := context.Cause(ctx); !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("stopped")
	return nil
}

// listenWeb listens at -web's address, loopback if it names no host, and
// says a failure in the program's own words, with what to do.
func listenWeb(web string) (net.Listener, error) {
	host, port, _ := net.SplitHostPort(web) // badWeb has checked it
	host = cmp.Or(host, "127.0.0.1")
	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return nil, fmt.Errorf("-web %s: port %s on %s is in use by another process: "+
			"stop it, or give -web another port (%s takes any free one)",
			web, port, host, net.JoinHostPort(host, "0"))
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return nil, fmt.Errorf("-web %s: %s is not an address of this host: "+
			"give one of its own, such as 127.0.0.1", web, host)
	case errors.Is(err, syscall.EACCES):
		return nil, fmt.Errorf("-web %s: port %s needs privileges on this host: "+
			"give a port of 1024 or above", web, port)
	case err != nil:
		return nil, fmt.Errorf("-web %s: %w", web, err)
	}
	return ln, nil
}

// loop runs a crawl about every interval until ctx is done. A crawl that
// takes longer than interval is followed at once by the next, never
// overlapped by it.
func (s *mapServer) loop(ctx context.Context, interval time.Duration, log *slog.Logger) {
	for ctx.Err() == nil {
		start := time.Now()
		if v, ok := s.recrawl(ctx); ok {
			c := v.Counts
			log.Info("crawl", "seq", v.Seq, "reached", c.Nodes, "dead", c.Dead, "links", c.Links,
				"components", c.Components, "took", time.Since(start).Round(time.Millisecond))
		}
		select {
		case <-ctx.Done():
		case <-time.After(max(0, interval-time.Since(start))):
		}
	}
}

// recrawl crawls the network once, with -role=map's bounds, and sends the
// map to every page. A crawl cut short by ctx is not a map: ok is false.
func (s *mapServer) recrawl(ctx context.Context) (v mapView, ok bool) {
	start := time.Now()
	m := crawl(ctx, s.client, s.seeds, s.max, s.hostMax)
	took := time.Since(start)
	if ctx.Err() != nil {
		return v, false
	}
	s.seq++
	v = newMapView(m, s.seeds)
	v.Seq, v.Started = s.seq, start.UTC().Round(time.Millisecond)
	v.TookMS = math.Round(float64(took.Microseconds())/100) / 10
	v.Cut.Max = s.max
	var mmd bytes.Buffer
	if len(m.lists) <= maxDrawn || s.draw {
		m.mermaid(&mmd)
	}
	fmt.Fprintln(&mmd, m.summary())
	if v.Why != "" {
		fmt.Fprintln(&mmd, v.Why)
	}
	s.publish(v, mmd.Bytes())
	return v, true
}

// publish makes v the last map and hands it to every page, replacing any
// map a page has not been sent yet.
func (s *mapServer) publish(v mapView, mmd []byte) {
	data, _ := json.Marshal(v) // strings, numbers and slices always encode
	s.mu.Lock()
	defer s.mu.Unlock()
	s.view, s.mmd = data, mmd
	for ch := range s.watchers {
		select {
		case <-ch: // a map this page has not been sent: the new one replaces it
		default:
		}
		ch <- data
	}
}

// watch adds a page, with the last map waiting for it if there is one. ok
// is false when maxMapWatchers pages are open already.
func (s *mapServer) watch() (ch chan []byte, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.watchers) >= maxMapWatchers {
		return nil, false
	}
	ch = make(chan []byte, 1)
	if s.view != nil {
		ch <- s.view
	}
	s.watchers[ch] = true
	return ch, true
}

// unwatch removes a page that has gone.
func (s *mapServer) unwatch(ch chan []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.watchers, ch)
}

// last is the last map, as JSON and as Mermaid text; nil before the first.
func (s *mapServer) last() (view, mmd []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.view, s.mmd
}

// newMapView is m as the page draws it: at most maxMapNodes nodes
// (mapOrder), each with the nodes it lists as indexes; and the counts of
// the whole crawl, as the summary gives them, even when it left nodes out.
func newMapView(m netMap, seeds []Node) mapView {
	v := mapView{Seeds: []string{}, Nodes: []mapNode{}}
	isSeed := map[Node]bool{}
	for _, n := range seeds {
		v.Seeds = append(v.Seeds, n.String())
		isSeed[n] = true
	}
	if !slices.ContainsFunc(seeds, func(s Node) bool { return m.lists[s] != nil }) {
		v.Why = "no seed answered GET /nodes/: tried " + names(seeds)
	}
	order := mapOrder(m, seeds)
	kept := order[:min(len(order), maxMapNodes)]
	index := map[Node]int{}
	for i, n := range kept {
		index[n] = i
	}
	in, component := mapDegrees(m)
	byPeers := listedByPeers(m, isSeed)
	unlisted := func(n Node) bool { return byPeers[n] == 0 && !isSeed[n] }
	for _, n := range kept {
		list, answered := m.lists[n]
		mn := mapNode{Addr: n.String(), Answered: answered, Seed: isSeed[n], In: in[n],
			Out: len(list), Component: -1, Lists: []int{}}
		if answered {
			mn.Component = component[n]
			mn.Unlisted = unlisted(n)
		}
		for _, l := range list {
			if i, ok := index[l]; ok {
				mn.Lists = append(mn.Lists, i)
			} else {
				mn.Beyond++
			}
		}
		v.Nodes = append(v.Nodes, mn)
	}
	v.Counts = mapCountsOf(m, in, component)
	for n := range m.lists {
		if unlisted(n) {
			v.Counts.Unlisted++
		}
	}
	v.Cut = mapCut{Sample: maxSample, Unasked: m.unasked, Limit: maxMapNodes,
		LeftOut: len(order) - len(kept)}
	for _, list := range m.lists {
		if len(list) >= maxSample {
			v.Cut.FullLists++
		}
	}
	return v
}

// mapOrder is the nodes of m in the order a page gets them: the seeds
// first, so that a map cut at its limit still shows where the crawl
// began, then those that answered, then those that did not, by address.
func mapOrder(m netMap, seeds []Node) []Node {
	first := map[Node]bool{}
	var order []Node
	for _, n := range seeds {
		if !first[n] && (m.lists[n] != nil || slices.Contains(m.dead, n)) {
			order = append(order, n)
		}
		first[n] = true
	}
	for _, n := range m.sorted() {
		if !first[n] {
			order = append(order, n)
		}
	}
	return order
}

// listedByPeers is, for every entry, how many processes that are no seed
// list it. A crawl reaches a node only through a process that lists it,
// so one that nobody lists is never on the map, unless it is a seed; what
// the map can show is a node that no peer lists, only the seeds.
func listedByPeers(m netMap, isSeed map[Node]bool) map[Node]int {
	by := map[Node]int{}
	for a, list := range m.lists {
		for _, b := range list {
			if !isSeed[a] {
				by[b]++
			}
		}
	}
	return by
}

// mapRoutes registers every path of the map server.
func mapRoutes(s *mapServer) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", handleMapPage())
	mux.Handle("GET /map.json", handleLastMap(s, false))
	mux.Handle("GET /map.mmd", handleLastMap(s, true))
	mux.Handle("GET /events", handleMapEvents(s))
	mux.Handle("/{$}", methodNotAllowed("GET, HEAD"))
	mux.Handle("/map.json", methodNotAllowed("GET, HEAD"))
	mux.Handle("/map.mmd", methodNotAllowed("GET, HEAD"))
	mux.Handle("/events", methodNotAllowed("GET, HEAD"))
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound,
			"no such page "+r.URL.Path+"; see /, /map.json, /map.mmd and /events")
	}))
	return byAddressOnly(mux)
}

// handleMapPage serves the page. The page puts every string it is sent
// into the document as text; its policy forbids, besides, any script but
// its own (by hash) and any fetch but /events, so that even markup that
// got in could neither run nor call out.
func handleMapPage() http.Handler {
	policy := pagePolicy(mapPage)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", policy)
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		w.Write(mapPage)
	})
}

// pagePolicy is the Content-Security-Policy of page: its one inline
// script allowed by its SHA-256, which allows no inline event handler.
func pagePolicy(page []byte) string {
	_, script, _ := bytes.Cut(page, []byte("<script>"))
	script, _, _ = bytes.Cut(script, []byte("</script>"))
	sum := sha256.Sum256(script)
	hash := base64.StdEncoding.EncodeToString(sum[:])
	return "default-src 'none'; script-src 'sha256-" + hash + "'; style-src 'unsafe-inline'; " +
		"connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'"
}

// handleLastMap answers the last map, or 503 before the first crawl ends:
// for GET /map.json its JSON; for GET /map.mmd (mermaid) what -role=map
// prints, the Mermaid flowchart (up to maxDrawn processes, unless -draw),
// the summary, and why the map is empty if it is.
func handleLastMap(s *mapServer, mermaid bool) http.Handler {
	contentType := "application/json"
	if mermaid {
		contentType = "text/plain; charset=utf-8"
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, mmd := s.last()
		if mermaid {
			body = mmd
		}
		if body == nil {
			w.Header().Set("Retry-After", retryAfter)
			writeError(w, http.StatusServiceUnavailable, "the first crawl has not ended yet")
			return
		}
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(http.StatusOK)
		w.Write(body)
	})
}

// handleMapEvents streams the map to a page: the last map at once, if there
// is one, then each new one, as "map" events whose data is the JSON of
// /map.json. It returns, and frees its goroutine, when the page goes, a
// write fails or times out, or the server stops.
func handleMapEvents(s *mapServer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		views, ok := s.watch()
		if !ok {
			msg := fmt.Sprintf("%d pages watch the map already: close one", maxMapWatchers)
			writeError(w, http.StatusServiceUnavailable, msg)
			return
		}
		defer s.unwatch(views)
		rc := http.NewResponseController(w)
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		fmt.Fprintf(w, "retry: %d\n\n", mapRetry.Milliseconds())
		if rc.Flush() != nil {
			return
		}
		for {
			select {
			case <-r.Context().Done():
				return
			case view := <-views:
				rc.SetWriteDeadline(time.Now().Add(mapWriteTimeout))
				// The JSON of Marshal holds no newline, so it fits one data line.
				fmt.Fprintf(w, "event: map\ndata: %s\n\n", view)
				if rc.Flush() != nil {
					return
				}
			}
		}
	})
}
