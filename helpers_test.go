package main

// Helpers shared by the tests: in-process peers on real loopback servers,
// hostile stand-ins, and the built binary run as real processes.

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// quiet is a logger for tests that do not read the logs.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// nodeAt is the node at ip and port, for tests: the program's own addresses
// come in through parseIP.
func nodeAt[P int | uint16](ip string, port P) Node {
	return Node{IP: netip.MustParseAddr(ip).Unmap(), Port: uint16(port)}
}

// inOneSpelling reports whether n is held as parseIP gives addresses: an
// IPv4 address as IPv4, and no zone.
func inOneSpelling(n Node) bool { return n.IP == n.IP.Unmap() && n.IP.Zone() == "" }

// self is the address of the process under test in handler-level tests.
var self = nodeAt("127.0.0.1", 42020)

// newTable opens a table in a fresh directory.
func newTable(t testing.TB, max int, nodes ...Node) *Table {
	t.Helper()
	tbl, err := openTable(t.TempDir(), "nodes.json", self, max, max) // no cap per host below -m
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tbl.Close() })
	if _, err := tbl.Add(nodes...); err != nil {
		t.Fatal(err)
	}
	return tbl
}

// newHandler is the API of a process whose table is tbl; verify stands in for the connect-back check.
func newHandler(tbl *Table, verify func(context.Context, Node) error) http.Handler {
	cfg := config{role: "seed", interval: seconds(time.Minute), timeout: seconds(10 * time.Second)}
	return newAPI(cfg, tbl, newQuota(verify, 10*time.Second), quiet).handler()
}

// alive and unreachable stand in for the connect-back check.
func alive(context.Context, Node) error       { return nil }
func unreachable(context.Context, Node) error { return errors.New("connection refused") }

// compact gives s as compact JSON, or s itself if it is not JSON.
func compact(s string) string {
	var b bytes.Buffer
	if json.Compact(&b, []byte(s)) != nil {
		return s
	}
	return b.String()
}

// distinctNodes returns n different nodes on the documentation range
// 192.0.2.0/24, for tables and handlers that call nobody: a process that
// runs rounds is never given them, since a host's own network may be that
// range.
func distinctNodes(n int) []Node {
	nodes := make([]Node, n)
	for i := range nodes {
		nodes[i] = nodeAt(fmt.Sprintf("192.0.2.%d", i%250+1), 1000+i)
	}
	return nodes
}

// postConcurrently posts every node to url at once and counts the answers by status.
func postConcurrently(t testing.TB, url string, nodes []Node) map[int]int {
	t.Helper()
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: len(nodes)}}
	defer client.CloseIdleConnections()
	codes := make([]int, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, _ := json.Marshal(n)
			resp, err := client.Post(url, "application/json", bytes.NewReader(body))
			if err != nil {
				return // counted as status 0
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	counts := map[int]int{}
	for _, c := range codes {
		counts[c]++
	}
	return counts
}

// testPeer is one simulated process: its table, rounds and API on a real loopback server.
type testPeer struct {
	*refresher
	srv *httptest.Server
}

func (p *testPeer) self() Node { return p.client.self }

// startPeer starts a process on host (port chosen by the kernel) with cfg's limit, max and fails.
func startPeer(t testing.TB, host string, cfg config) *testPeer {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr(host)
	cfg.ip, cfg.advertise, cfg.dir, cfg.file = ip, ip, t.TempDir(), "nodes.json"
	cfg.timeout = cmp.Or(cfg.timeout, seconds(10*time.Second)) // generous: a loaded machine slows tests, never fails them
	cfg.max = max(cfg.max, 1)
	cfg.fails = max(cfg.fails, 1)
	cfg.hostMax = cmp.Or(cfg.hostMax, 8)
	r, err := newRefresher(cfg, ln, "", quiet)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(newHandler(r.table, r.client.ping))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		r.table.Close()
	})
	return &testPeer{refresher: r, srv: srv}
}

// startPeers starts n processes on 127.0.0.1.
func startPeers(t testing.TB, n int, cfg config) []*testPeer {
	peers := make([]*testPeer, n)
	for i := range peers {
		peers[i] = startPeer(t, "127.0.0.1", cfg)
	}
	return peers
}

// deadAddr returns an address on which nothing listens: connections are refused.
func deadAddr(t testing.TB) Node {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	ln.Close()
	return nodeAt("127.0.0.1", addr.Port)
}

// hungPeer is an address that accepts connections and never answers.
type hungPeer struct {
	node     Node
	accepted chan struct{} // closed at the first connection
	calls    *atomic.Int32 // connections accepted
}

// hungAddr starts a hungPeer on loopback.
func hungAddr(t testing.TB) hungPeer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := hungPeer{node: nodeAt("127.0.0.1", ln.Addr().(*net.TCPAddr).Port), accepted: make(chan struct{}),
		calls: new(atomic.Int32)}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.calls.Add(1)
			mu.Lock()
			if conns == nil {
				close(h.accepted)
			}
			conns = append(conns, c) // held open, never read or answered
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return h
}

// nodeOf is the Node of an httptest server's URL.
func nodeOf(t testing.TB, url string) Node {
	ap, err := net.ResolveTCPAddr("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	return nodeAt(ap.IP.String(), ap.Port)
}

// countingServer answers as a node that knows nobody does, 200 with a
// JSON object, or an empty list to GET /nodes/, and counts announces
// (POST /) apart from other requests.
func countingServer(t testing.TB) (n Node, announces, other *atomic.Int32) {
	announces, other = new(atomic.Int32), new(atomic.Int32)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" && r.URL.Path == "/" {
			announces.Add(1)
		} else {
			other.Add(1)
		}
		if r.URL.Path == "/nodes/" {
			io.WriteString(w, "[]")
			return
		}
		io.WriteString(w, "{}")
	}))
	t.Cleanup(srv.Close)
	return nodeOf(t, srv.URL), announces, other
}

// converged reports whether every node knows at least min(limit, others) peers and the seed knows all nodes.
func converged(seed *testPeer, nodes []*testPeer, limit int) bool {
	for _, n := range nodes {
		if n.table.Len() < min(limit, len(nodes)-1) {
			return false
		}
	}
	return seed.table.Len() == len(nodes)
}

// runRounds drives one round of every node, then one of the seed.
func runRounds(seed *testPeer, nodes []*testPeer) {
	for _, n := range nodes {
		n.nodeRound(context.Background())
	}
	seed.seedRound(context.Background())
}

var (
	buildOnce sync.Once
	binDir    string
	binErr    error
)

// parallelTests is how many parallel tests run at once, unless -parallel says.
const parallelTests = 8

// helpers are other programs the test binary can be: when the environment
// variable PEERDISC_HELPER names one, TestMain runs it instead of the tests.
var helpers = map[string]func() int{}

// stress keeps every core busy while the tests run, as another program on
// the machine would: a test whose assertion races the clock fails under it
// (go test ./... -stress; .ci/run runs the suite so too).
var stress = flag.Bool("stress", false, "keep every core busy while the tests run")

func init() { helpers["burn"] = burn }

// burn is the -stress helper: one busy goroutine per core, until its
// standard input closes, which it does when the test binary exits.
func burn() int {
	for range runtime.NumCPU() {
		go func() {
			for x := uint64(1); ; x = x*6364136223846793005 + 1 {
			}
		}()
	}
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// burnerInput is the burn helper's standard input, held open (and never
// collected) until the test binary exits.
var burnerInput io.WriteCloser

// startBurner runs burn in a process of its own, beside the tests.
func startBurner() (err error) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "PEERDISC_HELPER=burn")
	if burnerInput, err = cmd.StdinPipe(); err != nil {
		return err
	}
	return cmd.Start()
}

func TestMain(m *testing.M) {
	if h := helpers[os.Getenv("PEERDISC_HELPER")]; h != nil {
		os.Exit(h())
	}
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		// Most parallel tests wait on processes and hosts, not on the CPU:
		// by default go test runs only as many as there are cores.
		flag.Set("test.parallel", strconv.Itoa(parallelTests))
	}
	if *stress {
		if err := startBurner(); err != nil {
			fmt.Fprintln(os.Stderr, "-stress:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binary builds the command once per test run and returns its path.
func binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "peerdisc-test")
		if binErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, "peerdisc"), ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return filepath.Join(binDir, "peerdisc")
}

// syncBuffer is a bytes.Buffer safe for a process to write while a test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// logsNotShown is the failed tests that have said how to see their
// processes' logs: a failure says why, and dumps no logs unless -v asks.
var logsNotShown sync.Map

// proc is one running process of the binary.
type proc struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	exited chan struct{} // closed once it has exited
	addr   Node          // where it listens, once started
}

// startProc runs the binary in dir (where its default data directories go)
// and waits until it serves.
func startProc(t testing.TB, dir string, args ...string) *proc {
	t.Helper()
	p := launch(t, dir, args...)
	p.waitStarted(t)
	return p
}

// waitStarted waits for the process to log that it serves, and reads its address from that line.
func (p *proc) waitStarted(t testing.TB) {
	t.Helper()
	started := regexp.MustCompile(`msg=started .*address=(\S+)`)
	eventually(t, 10*time.Second, func() bool {
		select {
		case <-p.exited:
			t.Fatalf("%v exited: %v\n%s", p.cmd.Args, p.cmd.ProcessState, p.stderr)
		default:
		}
		return started.MatchString(p.stderr.String())
	})
	addr := netip.MustParseAddrPort(started.FindStringSubmatch(p.stderr.String())[1])
	p.addr = Node{IP: addr.Addr(), Port: addr.Port()}
}

// launch runs the binary in dir without waiting for anything.
func launch(t testing.TB, dir string, args ...string) *proc {
	t.Helper()
	return launchCmd(t, dir, exec.Command(binary(t), args...))
}

// launchCmd runs cmd, the binary or a wrapper around it, in dir.
func launchCmd(t testing.TB, dir string, cmd *exec.Cmd) *proc {
	t.Helper()
	return startCmd(t, dir, cmd, cmd.Start)
}

// startCmd is launchCmd, started by start.
func startCmd(t testing.TB, dir string, cmd *exec.Cmd, start func() error) *proc {
	t.Helper()
	args := cmd.Args
	p := &proc{cmd: cmd, stderr: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd.Dir = dir
	p.cmd.Stderr = p.stderr
	if err := start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		switch {
		case !t.Failed():
		case testing.Verbose():
			t.Logf("%v:\n%s", args, p.stderr)
		default:
			if _, said := logsNotShown.LoadOrStore(t.Name(), true); !said {
				t.Log("go test -v shows the logs of the processes this test ran")
			}
		}
	})
	return p
}

// roundLine is one round line of a process's log: when the round ended,
// and how many peers it knew then.
type roundLine struct {
	at    time.Time
	known int
}

// roundLinePattern is the time and known= of a round line.
var roundLinePattern = regexp.MustCompile(`(?m)^time=(\S+) level=INFO msg=round (?:loaded=\d+ )?known=(\d+)`)

// rounds is the round lines p has logged so far.
func (p *proc) rounds() []roundLine {
	var lines []roundLine
	for _, m := range roundLinePattern.FindAllStringSubmatch(p.stderr.String(), -1) {
		at, _ := time.Parse(time.RFC3339Nano, m[1])
		known, _ := strconv.Atoi(m[2])
		lines = append(lines, roundLine{at, known})
	}
	return lines
}

// roundsBy is how many rounds p had ended by at, from the times its log
// gives them, not from when the test reads it: so a poll that saw
// something at at counts the rounds that ran until then, however long the
// test took to look. The log's times are in milliseconds; a line of the
// same millisecond as at counts.
func (p *proc) roundsBy(at time.Time) int {
	n := 0
	for _, l := range p.rounds() {
		if !l.at.After(at) {
			n++
		}
	}
	return n
}

// roundsTo is how many rounds p ran until one ended knowing at least
// known peers, or 0 if none has.
func (p *proc) roundsTo(known int) int {
	for i, l := range p.rounds() {
		if l.known >= known {
			return i + 1
		}
	}
	return 0
}

// wait returns the exit code once the process has exited, failing after limit.
func (p *proc) wait(t testing.TB, limit time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(limit):
		t.Fatalf("still running after %v", limit)
		return -1
	}
}

// within waits for ch to be closed or to send, failing after limit.
func within[T any](t testing.TB, limit time.Duration, ch <-chan T, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(limit):
		t.Fatalf("%s: not within %v", what, limit)
	}
}

// seenAt polls cond until it holds, failing after limit, and returns when
// the poll that saw it hold had ended: what held then held by that time.
func seenAt(t testing.TB, limit time.Duration, cond func() bool) time.Time {
	t.Helper()
	eventually(t, limit, cond)
	return time.Now()
}

// atMost fails t unless got is at most most, saying what was claimed, the
// figure it got and the figure it needed.
func atMost[T cmp.Ordered](t testing.TB, claim string, got, most T) {
	t.Helper()
	if got > most {
		t.Errorf("%s: got %v, need at most %v", claim, got, most)
	}
}

// atLeast is atMost the other way.
func atLeast[T cmp.Ordered](t testing.TB, claim string, got, least T) {
	t.Helper()
	if got < least {
		t.Errorf("%s: got %v, need at least %v", claim, got, least)
	}
}

// eventually polls cond until it holds, failing after limit, and returns how long it took.
func eventually(t testing.TB, limit time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("condition not met within %v", limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// testClient is the tests' client for talking to processes.
var testClient = &http.Client{Timeout: 5 * time.Second}

// listOf returns n's GET /nodes/, or nil if it does not answer.
func listOf(n Node) []Node {
	resp, err := testClient.Get("http://" + n.String() + "/nodes/")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	nodes, _ := parseNodes(data, maxListEntries)
	return nodes
}

// lists reports whether n lists every one of want.
func lists(n Node, want ...Node) bool {
	got := map[Node]bool{}
	for _, g := range listOf(n) {
		got[g] = true
	}
	for _, w := range want {
		if !got[w] {
			return false
		}
	}
	return true
}

// readNodesFile parses a nodes file, failing the test if it is not valid.
func readNodesFile(t testing.TB, path string) []Node {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := parseNodes(data, maxListEntries)
	if err != nil {
		t.Fatalf("%s is not a valid nodes file: %v\n%s", path, err, data)
	}
	return nodes
}

// writeNodesFile writes nodes as a nodes file at dir/data/nodes.json.
func writeNodesFile(b testing.TB, dir string, nodes []Node) {
	path := filepath.Join(dir, "data", "nodes.json")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.Fatal(err)
	}
	data, _ := json.Marshal(nodes)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Fatal(err)
	}
}

// needAliases skips a test that listens on 127.0.0.2 and friends where they
// are not set up, as on macOS without ifconfig aliases.
func needAliases(t testing.TB) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skip("127.0.0.2 is not a local address here (macOS needs: sudo ifconfig lo0 alias 127.0.0.2):", err)
	}
	ln.Close()
}

// rawServer answers every connection on loopback with reply, then holds it
// open until the test ends. A reply that is HTTP waits for the request's
// head first, as a server does; anything else is sent at once, as a banner.
func rawServer(t testing.TB, reply string) Node {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				r := bufio.NewReader(c)
				for strings.HasPrefix(reply, "HTTP/") {
					if line, err := r.ReadString('\n'); err != nil || line == "\r\n" {
						break
					}
				}
				io.WriteString(c, reply)
				io.Copy(io.Discard, r)
			}()
		}
	}()
	return nodeAt("127.0.0.1", ln.Addr().(*net.TCPAddr).Port)
}

// skipIfShort skips, under -short, a test that takes more than 10 s, and
// says why: -short is for the edit-test loop, and go test ./... runs it.
func skipIfShort(t testing.TB, why string) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: " + why)
	}
}

// apartEnv names, in a child process of the test binary, the test it runs (apart).
const apartEnv = "PEERDISC_APART"

// apart runs the test that calls it in a child process of the test binary,
// relaying what it logs, and reports whether this is that child, which
// runs the test. The simulations run so: their thousands of goroutines
// would delay the other tests' goroutines in this process by seconds, and
// those read the time when a process answers.
func apart(t *testing.T) bool {
	t.Helper()
	if os.Getenv(apartEnv) == t.Name() {
		return true
	}
	args := []string{"-test.run=^" + t.Name() + "$", "-test.v", "-test.count=1", "-sim=" + *simSizes}
	if deadline, ok := t.Deadline(); ok {
		args = append(args, "-test.timeout="+time.Until(deadline).String())
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), apartEnv+"="+t.Name())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for lines := bufio.NewScanner(out); lines.Scan(); {
		if line := lines.Text(); !strings.HasPrefix(line, "=== ") && line != "PASS" {
			t.Log(line)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%s, run in a process of its own: %v", t.Name(), err)
	}
	return false
}

// skipUnderRace skips a test of 1,000 simulated nodes or more, or of 300
// processes, under the race detector, which makes it take minutes (the
// processes starve beside the race-checked tests): .ci/run runs those
// without it.
func skipUnderRace(t testing.TB) {
	t.Helper()
	if raceEnabled {
		t.Skip("this takes minutes under -race; .ci/run runs it without")
	}
}

// forEachIndex calls fn(i) for every i below n, at most width at once.
func forEachIndex(n, width int, fn func(int)) {
	var wg sync.WaitGroup
	slots := make(chan struct{}, width)
	for i := range n {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			fn(i)
		}()
	}
	wg.Wait()
}
