package main

// Benchmarks, each beside its baseline or target, and the convergence
// simulation. Timing lives here and in the README, never in pass/fail tests.
// Run: go test -run '^$' -bench . -benchtime 3x

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkListNodes serves GET /nodes/ over loopback from 8 client
// goroutines, beside a bare net/http handler writing the same bytes.
func BenchmarkListNodes(b *testing.B) {
	for _, size := range []int{10, 1000} {
		tbl := newTable(b, size, distinctNodes(size)...)
		body := tbl.Body()
		bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(body)
		})
		for _, h := range []struct {
			name    string
			handler http.Handler
		}{{"bare", bare}, {"table", newHandler(tbl, alive)}} {
			b.Run(fmt.Sprintf("entries=%d/%s", size, h.name), func(b *testing.B) {
				srv := httptest.NewServer(h.handler)
				defer srv.Close()
				client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
				defer client.CloseIdleConnections()
				b.SetParallelism(4) // 4 x GOMAXPROCS(2) = 8 connections
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						resp, err := client.Get(srv.URL + "/nodes/")
						if err != nil {
							b.Error(err)
							return
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				})
			})
		}
	}
}

// okServer is a live peer that answers every request with 200, as a node
// that knows nobody does.
func okServer(b testing.TB) Node {
	check := handleCheck(memTable(Node{}, 1, 1))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/nodes/" {
			io.WriteString(w, "[]\n") // a node that knows nobody
			return
		}
		check.ServeHTTP(w, r)
	}))
	b.Cleanup(srv.Close)
	return nodeOf(b, srv.URL)
}

// mixedPeers returns 1,000 nodes: 900 refusing connections, 50 accepting and
// never answering, and 50 alive (returned also on their own).
func mixedPeers(b testing.TB) (all, live []Node) {
	dead := deadAddr(b).Port
	for i := range 900 {
		all = append(all, nodeAt(fmt.Sprintf("127.0.%d.%d", 1+i/250, 1+i%250), dead))
	}
	for range 50 {
		all = append(all, hungAddr(b).node)
		live = append(live, okServer(b))
	}
	return append(all, live...), live
}

// BenchmarkRound1000 is one round of the seed, and one of a node at -k
// that nobody announced to, over 1,000 entries at -t 1; the
// target is about one timeout, not the sum of them.
func BenchmarkRound1000(b *testing.B) {
	all, live := mixedPeers(b)
	for _, role := range []string{"seed", "node"} {
		b.Run(role, func(b *testing.B) {
			p := startPeer(b, "127.0.0.1", config{role: role, enough: 10, max: 2000, timeout: seconds(time.Second)})
			for range b.N {
				b.StopTimer()
				if _, err := p.table.Add(all...); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if role == "seed" {
					p.seedRound(context.Background())
				} else {
					p.nodeRound(context.Background()) // at -k, and nobody announced to it: a swap, and a walk
				}
			}
			for _, n := range live {
				if !p.table.Has(n) {
					b.Fatalf("%v was removed, but it answers", n)
				}
			}
			if p.table.Len() > len(live)+50 {
				b.Fatalf("%d left after the round: the refused stay", p.table.Len())
			}
		})
	}
}

// BenchmarkConcurrentAdds posts 1,000 new nodes at once into a table of
// 10,000; one op is the whole batch, every add acknowledged on disk.
func BenchmarkConcurrentAdds(b *testing.B) {
	tbl := newTable(b, 20000, distinctNodes(10000)...)
	srv := httptest.NewServer(newHandler(tbl, alive))
	defer srv.Close()
	batch := make([]Node, 1000)
	for i := range batch {
		batch[i] = nodeAt(fmt.Sprintf("198.51.100.%d", i%250+1), 20000+i)
	}
	for range b.N {
		codes := postConcurrently(b, srv.URL+"/nodes/", batch)
		if codes[200] != len(batch) {
			b.Fatalf("answers %v", codes)
		}
		b.StopTimer()
		tbl.Remove(batch...)
		b.StartTimer()
	}
}

// BenchmarkJoinStorm has 50 live nodes announce at once with POST /, each
// verified by a connect-back; one op ends when all 50 are listed.
func BenchmarkJoinStorm(b *testing.B) {
	var joiners []Node
	for range 50 {
		joiners = append(joiners, okServer(b))
	}
	seed := startPeer(b, "127.0.0.1", config{max: 1000})
	for range b.N {
		codes := postConcurrently(b, seed.srv.URL+"/", joiners)
		if codes[200] != len(joiners) || seed.table.Len() != len(joiners) {
			b.Fatalf("answers %v, %d listed", codes, seed.table.Len())
		}
		b.StopTimer()
		seed.table.Remove(joiners...)
		b.StartTimer()
	}
}

// countingTransport counts the requests and body bytes that pass through it.
type countingTransport struct {
	base            http.RoundTripper
	requests, bytes *atomic.Int64
}

func (c countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.requests.Add(1)
	c.bytes.Add(max(req.ContentLength, 0))
	resp, err := c.base.RoundTrip(req)
	if err == nil {
		resp.Body = countingBody{resp.Body, c.bytes}
	}
	return resp, err
}

// countingBody adds what is read from a response body to n.
type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// TestSimulation200 joins 200 nodes (-k 10) through one seed, all at once,
// and drives rounds until every node knows at least 10 peers. It counts every
// request and body byte, including the connect-back checks.
func TestSimulation200(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation of 200 nodes")
	}
	t.Parallel()
	const size, limit = 200, 10
	var requests, bytes atomic.Int64
	count := func(p *testPeer) {
		p.client.http.Transport = countingTransport{p.client.http.Transport, &requests, &bytes}
	}
	seed := startPeer(t, "127.0.0.1", config{max: 1000})
	count(seed)
	nodes := startPeers(t, size, config{enough: limit, max: 1000})
	for _, n := range nodes {
		n.table.SetSeeds([]Node{seed.self()})
		count(n)
	}
	rounds := 0
	for ; rounds < 10 && !converged(seed, nodes, limit); rounds++ {
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n.nodeRound(context.Background())
			}()
		}
		wg.Wait()
		seed.seedRound(context.Background())
	}
	if !converged(seed, nodes, limit) {
		short := 0
		for _, n := range nodes {
			if n.table.Len() < limit {
				short++
			}
		}
		t.Fatalf("not converged after %d rounds: %d nodes know fewer than %d; the seed knows %d", rounds, short, limit, seed.table.Len())
	}
	if rounds > 3 {
		t.Errorf("took %d rounds, want at most 3", rounds)
	}
	least := size
	for _, n := range nodes {
		least = min(least, n.table.Len())
	}
	t.Logf("200 nodes reached -k %d in %d rounds (fewest known: %d); per join: %d requests, %d body bytes",
		limit, rounds, least, requests.Load()/size, bytes.Load()/size)
}

// BenchmarkConvergence30 starts a seed and 30 node processes at -u 1 -k 10
// and reports the mean seconds until every node knows 10 peers and the seed all 30.
// Each node gets its own -d: the default .node-PORT is shared by nodes that
// listen on the same port on different addresses.
func BenchmarkConvergence30(b *testing.B) {
	needAliases(b)
	var total time.Duration
	for range b.N {
		dir := b.TempDir()
		seed := startProc(b, dir, "-role=seed", "-p", "0", "-u", "1")
		start := time.Now()
		var nodes []*proc
		for i := range 30 {
			nodes = append(nodes, launch(b, dir, "-role=node", "-i", fmt.Sprintf("127.0.1.%d", i+1), "-p", "0", "-d", fmt.Sprintf("node-%d", i), "-u", "1", "-k", "10",
				"-di", "127.0.0.1", "-dp", strconv.Itoa(int(seed.addr.Port))))
		}
		eventually(b, 30*time.Second, func() bool {
			if len(listOf(seed.addr)) != 30 {
				return false
			}
			for _, n := range listOf(seed.addr) {
				if len(listOf(n)) < 10 {
					return false
				}
			}
			return true
		})
		total += time.Since(start)
		for _, n := range nodes {
			n.cmd.Process.Kill()
		}
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s-to-converge")
}

// BenchmarkStartupSweep starts a seed process at -t 1 -f 1 on a file of the
// 1,000 mixed entries and reports the mean seconds from launch until only the
// live remain: the cost of one sweep (at the default -f 2 the dead go one -u later).
func BenchmarkStartupSweep(b *testing.B) {
	all, live := mixedPeers(b)
	var total time.Duration
	for range b.N {
		dir := b.TempDir()
		writeNodesFile(b, dir, all)
		start := time.Now()
		seed := launch(b, dir, "-role=seed", "-p", "0", "-d", "data", "-t", "1", "-f", "1", "-m", "2000")
		seed.waitStarted(b)
		eventually(b, 30*time.Second, func() bool { return len(listOf(seed.addr)) == len(live) })
		total += time.Since(start)
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s-until-dead-gone")
}

// BenchmarkSeedMemory10k starts a seed at -f 1 on a file of 10,000 dead
// entries, waits for its first round to remove them all, and reports its peak RSS.
func BenchmarkSeedMemory10k(b *testing.B) {
	dead := deadAddr(b).Port
	nodes := make([]Node, 10000)
	for i := range nodes {
		nodes[i] = nodeAt(fmt.Sprintf("127.1.%d.%d", i/250, 1+i%250), dead)
	}
	peak := 0.0
	for range b.N {
		dir := b.TempDir()
		writeNodesFile(b, dir, nodes)
		seed := startProc(b, dir, "-role=seed", "-p", "0", "-d", "data", "-t", "1", "-f", "1", "-m", "10000")
		eventually(b, 60*time.Second, func() bool {
			return strings.Contains(seed.stderr.String(), "msg=round loaded=10000 known=0")
		})
		peak = max(peak, peakRSS(b, seed))
	}
	b.ReportMetric(peak, "MB-peak-RSS") // the highest of the runs
}

// peakRSS is p's peak resident set so far, in MB, from /proc (Linux only).
func peakRSS(b *testing.B, p *proc) float64 {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		b.Skip("no /proc here:", err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if kb, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(kb), "kB")))
			return float64(n) / 1024
		}
	}
	b.Skip("no VmHWM in /proc/PID/status")
	return 0
}

// slowestRound is the longest took= of p's round lines so far.
func slowestRound(p *proc) time.Duration {
	var slowest time.Duration
	for _, m := range regexp.MustCompile(`msg=round .* took=(\S+)`).FindAllStringSubmatch(p.stderr.String(), -1) {
		d, _ := time.ParseDuration(m[1])
		slowest = max(slowest, d)
	}
	return slowest
}

// BenchmarkHostileLists runs a node at -t 1 whose 9 peers answer GET /nodes/
// with a list meant to blow up its memory, beside one whose 9 peers answer
// honestly: "gzip" is 4 MiB of [0,0,...] gzipped to about 4 kB and sent with
// Content-Encoding: gzip, "junk" the same 1 MiB list uncompressed. The node
// knows fewer than -k 10, so it fetches all 9 lists every round. It reports
// the node's peak RSS and its slowest round over 3 rounds.
func BenchmarkHostileLists(b *testing.B) {
	junk := []byte("[" + strings.Repeat("0,", 1<<19-1) + "0]")
	var bomb bytes.Buffer
	z := gzip.NewWriter(&bomb)
	z.Write([]byte("[" + strings.Repeat("0,", 2<<20) + "0]"))
	z.Close()
	for _, mode := range []string{"honest", "gzip", "junk"} {
		b.Run(mode, func(b *testing.B) {
			peers := make([]Node, 9)
			var honest []byte // the 9 peers themselves, once they listen
			for i := range peers {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					switch {
					case r.Method != "GET" || r.URL.Path != "/nodes/":
						io.WriteString(w, "{}\n") // checks and announces succeed: the peer stays listed
					case mode == "gzip":
						w.Header().Set("Content-Encoding", "gzip")
						w.Write(bomb.Bytes())
					case mode == "junk":
						w.Write(junk)
					default:
						w.Write(honest)
					}
				}))
				b.Cleanup(srv.Close)
				peers[i] = nodeOf(b, srv.URL)
			}
			honest, _ = json.Marshal(peers)
			peak, slowest := 0.0, time.Duration(0)
			for range b.N {
				dir := b.TempDir()
				writeNodesFile(b, dir, peers)
				node := startProc(b, dir, "-role=node", "-p", "0", "-d", "data", "-u", "1", "-t", "1",
					"-di", "127.0.0.1", "-dp", strconv.Itoa(int(deadAddr(b).Port)))
				eventually(b, 30*time.Second, func() bool { return strings.Count(node.stderr.String(), "msg=round") >= 3 })
				peak, slowest = max(peak, peakRSS(b, node)), max(slowest, slowestRound(node))
			}
			b.ReportMetric(peak, "MB-peak-RSS")
			b.ReportMetric(slowest.Seconds(), "s-slowest-round")
		})
	}
}

// BenchmarkHeaderBomb runs a seed at -t 1 whose 100 nodes answer its check
// with 9 MB of response headers, all at once, beside one whose 100 nodes
// answer honestly, and reports the seed's peak RSS after its first round.
func BenchmarkHeaderBomb(b *testing.B) {
	for _, mode := range []string{"honest", "headers"} {
		b.Run(mode, func(b *testing.B) {
			reply := "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n{}\n"
			if mode == "headers" {
				reply = "HTTP/1.1 200 OK\r\nX-Bomb: " + strings.Repeat("a", 9<<20) + "\r\n\r\n"
			}
			nodes := make([]Node, 100)
			for i := range nodes {
				nodes[i] = rawServer(b, reply)
			}
			peak := 0.0
			for range b.N {
				dir := b.TempDir()
				writeNodesFile(b, dir, nodes)
				seed := startProc(b, dir, "-role=seed", "-p", "0", "-d", "data", "-t", "1")
				eventually(b, 30*time.Second, func() bool { return strings.Contains(seed.stderr.String(), "msg=round") })
				peak = max(peak, peakRSS(b, seed))
			}
			b.ReportMetric(peak, "MB-peak-RSS")
		})
	}
}

// BenchmarkSample serves GET /nodes/?sample=22 (a join at -k 10) from tables
// of 1,000 and 10,000 entries in 250 groups, beside GET /nodes/ of the whole
// table: a sample draws by group, so it visits every entry, but encodes 22.
func BenchmarkSample(b *testing.B) {
	for _, size := range []int{1000, 10000} {
		nodes := make([]Node, size)
		for i := range nodes {
			nodes[i] = nodeAt(fmt.Sprintf("11.%d.%d.%d", i%250, i/250/250, 1+i/250%250), 5000)
		}
		tbl := newTable(b, size, nodes...)
		h := newHandler(tbl, alive)
		for _, path := range []string{"/nodes/?sample=22", "/nodes/"} {
			b.Run(fmt.Sprintf("entries=%d/%s", size, path), func(b *testing.B) {
				for range b.N {
					w := httptest.NewRecorder()
					req := newRequest("GET", path, nil)
					req.RemoteAddr = "203.0.113.9:4000"
					h.ServeHTTP(w, req)
				}
			})
		}
	}
}

// BenchmarkAnnounceDuringSampleFlood: an announce of a known node to a seed
// of 1,000 entries, over loopback, alone and while 64 connections ask for
// ?sample=256 as fast as they can, with connections of their own. Samples
// are encoded outside the table's lock, so the flood costs the announce
// CPU, not a wait for the lock; and one group's samples are served one at
// a time, so it costs at most that.
//
//	go test -run '^$' -bench AnnounceDuringSampleFlood -benchtime 2000x -count 5 .
func BenchmarkAnnounceDuringSampleFlood(b *testing.B) {
	nodes := make([]Node, 1000)
	for i := range nodes {
		nodes[i] = nodeAt(fmt.Sprintf("11.%d.%d.%d", i%250, i/250/250, 1+i/250%250), 5000)
	}
	tbl := newTable(b, 2000, nodes...)
	known := nodeAt("127.0.0.1", 5000)
	_, err := tbl.Add(known)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(newHandler(tbl, alive))
	b.Cleanup(srv.Close)
	body := nodeBody(known)
	for _, flooders := range []int{0, 64} {
		b.Run(fmt.Sprintf("flooders=%d", flooders), func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			flood := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: flooders}} // its own connections: the announcer keeps its one
			for range flooders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for ctx.Err() == nil {
						req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/nodes/?sample=256", nil)
						if resp, err := flood.Do(req); err == nil {
							io.Copy(io.Discard, resp.Body)
							resp.Body.Close()
						}
					}
				}()
			}
			latencies := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				resp, err := http.Post(srv.URL+"/", "application/json", strings.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				latencies = append(latencies, time.Since(start))
			}
			b.StopTimer()
			cancel()
			wg.Wait()
			slices.Sort(latencies)
			b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds()), "median-µs")
			b.ReportMetric(float64(latencies[len(latencies)*9/10].Microseconds()), "p90-µs")
			b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// BenchmarkCrawlMaze: -role=map at -m 1000 against a maze of 1,000
// listeners, each answering every GET with the same 10,000 entries (the
// whole maze, then 9,000 ports of one address where nothing listens),
// beside the same maze whose listeners answer ?sample=256 as nodes do. It
// reports the peak of the heap, sampled every 10 ms.
//
//	go test -run '^$' -bench CrawlMaze -benchtime 3x .
func BenchmarkCrawlMaze(b *testing.B) {
	for _, honours := range []bool{false, true} {
		b.Run(fmt.Sprintf("honours-sample=%v", honours), func(b *testing.B) {
			var whole, sample []byte
			var maze []Node
			for range 1000 {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if honours && r.URL.Query().Has("sample") {
						w.Write(sample)
						return
					}
					w.Write(whole)
				}))
				b.Cleanup(srv.Close)
				maze = append(maze, nodeOf(b, srv.URL))
			}
			entries := slices.Clone(maze)
			for i := len(maze); i < 10_000; i++ {
				entries = append(entries, nodeAt("127.0.0.254", i))
			}
			whole, sample = encodeNodes(entries), encodeNodes(maze[:maxSample])
			peak, stop := watchHeap()
			b.ResetTimer()
			for range b.N {
				m := crawl(context.Background(), newPeerClient(5*time.Second, Node{}), maze[:1], 1000, 8)
				if len(m.lists) < 256 {
					b.Fatalf("the crawl reached %d processes", len(m.lists))
				}
			}
			b.StopTimer()
			stop()
			b.ReportMetric(float64(peak.Load())/1e6, "peak-heap-MB")
		})
	}
}

// watchHeap samples the heap in use every 10 ms, keeping its peak, until stop.
func watchHeap() (peak *atomic.Uint64, stop func()) {
	peak = new(atomic.Uint64)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak.Store(max(peak.Load(), ms.HeapInuse))
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return peak, func() { close(done); wg.Wait() }
}
