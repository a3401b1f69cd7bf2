package main

// Benchmarks, each beside its baseline or target, and the convergence
// simulation. Timing lives here and in the README, never in pass/fail tests.
// Run: go test -run '^$' -bench . -benchtime 3x

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
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

// okServer is a live peer that answers every request with 200.
func okServer(b testing.TB) Node {
	srv := httptest.NewServer(handleCheck())
	b.Cleanup(srv.Close)
	return nodeOf(b, srv.URL)
}

// mixedPeers returns 1,000 nodes: 900 refusing connections, 50 accepting and
// never answering, and 50 alive (returned also on their own).
func mixedPeers(b testing.TB) (all, live []Node) {
	dead := deadAddr(b).Port
	for i := range 900 {
		all = append(all, Node{IP: fmt.Sprintf("127.0.%d.%d", 1+i/250, 1+i%250), Port: dead})
	}
	for range 50 {
		all = append(all, hungAddr(b).node)
		live = append(live, okServer(b))
	}
	return append(all, live...), live
}

// BenchmarkRound1000 is one seed round over 1,000 entries at -t 1; the
// target is about one timeout, not the sum of them.
func BenchmarkRound1000(b *testing.B) {
	all, live := mixedPeers(b)
	p := startPeer(b, "127.0.0.1", config{max: 2000, timeout: seconds(time.Second)})
	for range b.N {
		b.StopTimer()
		if _, err := p.table.Add(all...); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		p.seedRound(context.Background())
	}
	if p.table.Len() != len(live) {
		b.Fatalf("%d left after the round, want the %d live", p.table.Len(), len(live))
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
		batch[i] = Node{IP: fmt.Sprintf("198.51.100.%d", i%250+1), Port: 20000 + i}
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
	const size, limit = 200, 10
	var requests, bytes atomic.Int64
	count := func(p *testPeer) {
		p.client.http.Transport = countingTransport{p.client.http.Transport, &requests, &bytes}
	}
	seed := startPeer(t, "127.0.0.1", config{max: 1000})
	count(seed)
	nodes := startPeers(t, size, config{limit: limit, max: 1000})
	for _, n := range nodes {
		n.seeds = []Node{seed.self()}
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
				"-di", "127.0.0.1", "-dp", strconv.Itoa(seed.addr.Port)))
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

// BenchmarkStartupSweep starts a seed process at -t 1 on a file of the 1,000
// mixed entries and reports the mean seconds from launch until only the live remain.
func BenchmarkStartupSweep(b *testing.B) {
	all, live := mixedPeers(b)
	var total time.Duration
	for range b.N {
		dir := b.TempDir()
		writeNodesFile(b, dir, all)
		start := time.Now()
		seed := launch(b, dir, "-role=seed", "-p", "0", "-d", "data", "-t", "1", "-m", "2000")
		seed.waitStarted(b)
		eventually(b, 30*time.Second, func() bool { return len(listOf(seed.addr)) == len(live) })
		total += time.Since(start)
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s-until-dead-gone")
}

// BenchmarkSeedMemory10k starts a seed on a file of 10,000 dead entries,
// waits for its first round to remove them all, and reports its peak RSS.
func BenchmarkSeedMemory10k(b *testing.B) {
	dead := deadAddr(b).Port
	nodes := make([]Node, 10000)
	for i := range nodes {
		nodes[i] = Node{IP: fmt.Sprintf("127.1.%d.%d", i/250, 1+i%250), Port: dead}
	}
	peak := 0
	for range b.N {
		dir := b.TempDir()
		writeNodesFile(b, dir, nodes)
		seed := startProc(b, dir, "-role=seed", "-p", "0", "-d", "data", "-t", "1", "-m", "10000")
		eventually(b, 60*time.Second, func() bool { return strings.Contains(seed.stderr.String(), "msg=round known=0") })
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", seed.cmd.Process.Pid))
		if err != nil {
			b.Skip("no /proc here:", err)
		}
		for _, line := range strings.Split(string(status), "\n") {
			if kb, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(kb), "kB")))
				peak = max(peak, n)
			}
		}
	}
	b.ReportMetric(float64(peak)/1024, "MB-peak-RSS") // the highest of the runs
}
