//go:build linux

package main

// A lab of hosts, for what loopback cannot show: network namespaces on one
// bridge, with private addresses (10.77.0.0/24, fd77::/64) that exist only
// inside them, made by the test and removed when it ends, however it ends.
// The lab is never joined to this machine's own network. The test makes
// its sockets, and starts its processes, inside a host by entering the
// host's namespace on a thread of its own for a moment (labHost.inside): a
// socket, and a process, stay in the namespace they were made in. It needs
// root and ip (iproute2), and skips without them.

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// labSeq tells apart the labs of one test binary.
var labSeq atomic.Int32

// lab is a set of hosts on one bridge.
type lab struct {
	t     *testing.T
	name  string // the prefix of every namespace: pdlab<pid>-<n>
	dir   string
	hosts []*labHost
}

// labHost is one host of a lab: a network namespace with one interface.
type labHost struct {
	lab      *lab
	ns       string
	v4, v6   string
	eth      string       // its interface, as the bridge's namespace names the other end
	client   *http.Client // requests from inside this host
	accepts  sync.Map     // the connections each of its listeners accepted: port -> *atomic.Int64
	listened []io.Closer  // its listeners and what they hold, closed when the test ends
	mu       sync.Mutex   // guards listened
	nsOnce   sync.Once
	nsFile   *os.File // its namespace, once opened
	nsErr    error
}

// newLab makes n hosts, h0 to h(n-1), at 10.77.0.(i+1) and fd77::(i+1).
func newLab(t *testing.T, n int) *lab {
	t.Helper()
	skipIfShort(t, "the lab of hosts needs root and takes seconds")
	if os.Geteuid() != 0 {
		t.Skip("the lab of hosts needs root, to make network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("the lab of hosts needs ip (iproute2):", err)
	}
	if sysSetns == 0 {
		t.Skip("the lab of hosts does not know setns(2) on " + runtime.GOARCH)
	}
	removeStaleLabs()
	l := &lab{t: t, name: fmt.Sprintf("pdlab%d-%d", os.Getpid(), labSeq.Add(1)), dir: t.TempDir()}
	sw := l.name + "-sw"
	for i := range n {
		l.hosts = append(l.hosts, l.host(fmt.Sprintf("%s-h%d", l.name, i),
			fmt.Sprintf("10.77.0.%d", i+1), fmt.Sprintf("fd77::%d", i+1), fmt.Sprintf("v%d", i)))
	}
	// One ip process per namespace, not one per command: a lab of 7 hosts
	// took 60 of them.
	var adds []string
	for _, name := range append([]string{sw}, l.hostNames()...) {
		l.t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() }) // even if the test fails
		adds = append(adds, "netns add "+name)
	}
	l.batch("", adds...)
	wires := []string{"link add br0 type bridge", "link set br0 up"}
	for _, h := range l.hosts {
		wires = append(wires, "link add "+h.eth+" type veth peer name eth0 netns "+h.ns,
			"link set "+h.eth+" master br0 up")
	}
	l.batch(sw, wires...)
	for _, h := range l.hosts {
		l.batch(h.ns, "link set lo up", "addr add "+h.v4+"/24 dev eth0", "addr add "+h.v6+"/64 dev eth0 nodad",
			"link set eth0 up")
	}
	return l
}

// hostNames is the namespace of each host.
func (l *lab) hostNames() []string {
	var names []string
	for _, h := range l.hosts {
		names = append(names, h.ns)
	}
	return names
}

// netns adds a namespace and removes it when the test ends, even if it fails.
func (l *lab) netns(name string) {
	l.t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	l.ip("netns", "add", name)
}

// ip runs ip (iproute2), failing the test if it fails.
func (l *lab) ip(args ...string) {
	l.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		l.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// batch runs ip commands in the namespace ns ("": this one's) in one ip
// process, failing the test if one fails.
func (l *lab) batch(ns string, commands ...string) {
	l.t.Helper()
	args := []string{"-batch", "-"}
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	cmd := exec.Command("ip", args...)
	cmd.Stdin = strings.NewReader(strings.Join(commands, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		l.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// removeStaleLabs deletes the namespaces of labs whose test binary died
// before it could (a test killed by its timeout runs no cleanup).
func removeStaleLabs() {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(line, " ")
		pid, _, ok := strings.Cut(strings.TrimPrefix(name, "pdlab"), "-")
		if n, err := strconv.Atoi(pid); ok && err == nil && strings.HasPrefix(name, "pdlab") && syscall.Kill(n, 0) == syscall.ESRCH {
			exec.Command("ip", "netns", "del", name).Run()
		}
	}
}

// addAddresses gives h more addresses, each prefix its length
// (10.90.0.1/16, fd90::1/64), reachable on the lab's link whatever its
// subnet.
func (h *labHost) addAddresses(prefixes ...string) {
	var commands []string
	for _, p := range prefixes {
		c := "addr add " + p + " dev eth0"
		if strings.Contains(p, ":") {
			c += " nodad"
		}
		commands = append(commands, c)
	}
	h.lab.batch(h.ns, commands...)
}

// onLink routes all of 10.0.0.0/8 and fd00::/8 over h's link, so that
// hosts given addresses outside the lab's own subnets still reach each other.
func (h *labHost) onLink() {
	h.lab.batch(h.ns, "route add 10.0.0.0/8 dev eth0", "route add fd00::/8 dev eth0")
}

// secondAddress gives h another address of the family of ip, beside its
// first, and returns it. The kernel still sends from the first unless told.
func (h *labHost) secondAddress(ip string) string {
	if strings.Contains(ip, ":") {
		second := strings.Replace(h.v6, "fd77::", "fd77::1:", 1)
		h.lab.ip("-n", h.ns, "addr", "add", second+"/64", "dev", "eth0", "nodad")
		return second
	}
	last, _ := strconv.Atoi(h.v4[strings.LastIndex(h.v4, ".")+1:])
	second := fmt.Sprintf("10.77.0.%d", 100+last)
	h.lab.ip("-n", h.ns, "addr", "add", second+"/24", "dev", "eth0")
	return second
}

// link sets the bridge's end of h's cable up or down, as a cable plugged or
// pulled: h keeps its addresses (Linux drops IPv6 addresses from an
// interface that is itself set down).
func (h *labHost) link(state string) { h.lab.ip("-n", h.lab.name+"-sw", "link", "set", h.eth, state) }

// start runs the binary on h with args, in a directory of its own, and waits
// until it serves.
func (h *labHost) start(args ...string) *proc { return h.startWithSeeds(nil, args...) }

// startWithSeeds is start with a nodes.json of seeds in the process's
// directory, the list a node reads when not given -di or -dp.
func (h *labHost) startWithSeeds(seeds []Node, args ...string) *proc {
	t := h.lab.t
	t.Helper()
	dir, err := os.MkdirTemp(h.lab.dir, "proc")
	if err != nil {
		t.Fatal(err)
	}
	if seeds != nil {
		if err := os.WriteFile(filepath.Join(dir, "nodes.json"), encodeNodes(seeds), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := h.launch(dir, exec.Command(binary(t), args...))
	p.waitStarted(t)
	return p
}

// startLimited is start with at most nofile descriptors for the process
// (prlimit, from util-linux).
func (h *labHost) startLimited(nofile int, args ...string) *proc {
	t := h.lab.t
	t.Helper()
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("needs prlimit (util-linux):", err)
	}
	limit := fmt.Sprintf("--nofile=%d:%d", nofile, nofile)
	p := h.launch(t.TempDir(), exec.Command("prlimit", append([]string{limit, binary(t)}, args...)...))
	p.waitStarted(t)
	return p
}

// launch starts cmd in dir, inside h.
func (h *labHost) launch(dir string, cmd *exec.Cmd) *proc {
	h.lab.t.Helper()
	return startCmd(h.lab.t, dir, cmd, func() error { return h.inside(cmd.Start) })
}

// labFrom is the key of the context value that names the address of its
// host's a request goes out from.
type labFrom struct{}

// host is the host of the namespace ns, with the addresses v4 and v6 on
// its interface, which the bridge's namespace calls eth.
func (l *lab) host(ns, v4, v6, eth string) *labHost {
	h := &labHost{lab: l, ns: ns, v4: v4, v6: v6, eth: eth}
	h.client = &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true, // a connection per request, as a process makes them
			DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
				var d net.Dialer
				if from, ok := ctx.Value(labFrom{}).(string); ok {
					d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
				}
				err = h.inside(func() (err error) { c, err = d.DialContext(ctx, network, addr); return err })
				return c, err
			},
		},
	}
	l.t.Cleanup(func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, c := range h.listened {
			c.Close()
		}
	})
	return h
}

// inside runs fn on a thread that has entered h's network namespace: the
// sockets fn makes belong to h for good, and a process it starts runs in h.
func (h *labHost) inside(fn func() error) error {
	if err := h.openNS(); err != nil {
		return err
	}
	runtime.LockOSThread()
	if err := setns(h.nsFile); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	fnErr := fn()
	if err := setns(homeNS); err != nil {
		return err // the thread stays locked, and ends with this goroutine: it is in the wrong namespace
	}
	runtime.UnlockOSThread()
	return fnErr
}

// homeNS is the network namespace the test runs in, open for good.
var homeNS, homeErr = os.Open("/proc/self/ns/net")

// openNS opens h's namespace once, and closes it when the test ends.
func (h *labHost) openNS() error {
	h.nsOnce.Do(func() {
		if h.nsFile, h.nsErr = os.Open("/var/run/netns/" + h.ns); h.nsErr == nil {
			h.hold(h.nsFile)
		}
	})
	return cmp.Or(homeErr, h.nsErr)
}

// sysSetns is setns(2)'s number, which the syscall package does not name,
// on the architectures Go runs Linux on.
var sysSetns = map[string]uintptr{"amd64": 308, "386": 346, "arm64": 268, "arm": 375, "riscv64": 268,
	"loong64": 268, "ppc64le": 350, "ppc64": 350, "s390x": 339, "mips64le": 5303, "mips64": 5303}[runtime.GOARCH]

// setns moves this thread into the network namespace ns.
func setns(ns *os.File) error {
	if _, _, errno := syscall.RawSyscall(sysSetns, ns.Fd(), syscall.CLONE_NEWNET, 0); errno != 0 {
		return fmt.Errorf("setns %s: %w", ns.Name(), errno)
	}
	return nil
}

// do sends one request from h and returns the status and body; 0 if it
// could not be sent.
func (h *labHost) do(method string, to Node, path, body string) (int, string) {
	return h.doFrom("", method, to, path, body)
}

// doFrom is do, sent from the address from of h's (the kernel's choice if "").
func (h *labHost) doFrom(from, method string, to Node, path, body string) (int, string) {
	req, _ := http.NewRequest(method, "http://"+to.String()+path, strings.NewReader(body))
	if from != "" {
		req = req.WithContext(context.WithValue(req.Context(), labFrom{}, from))
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

// list is n's GET /nodes/ as h sees it, or nil.
func (h *labHost) list(n Node) []Node {
	status, body := h.do("GET", n, "/nodes/", "")
	if status != 200 {
		return nil
	}
	nodes, _ := parseNodes([]byte(body), maxListEntries)
	return nodes
}

// listen opens count listeners on h's address ip that answer as mode
// says: "ok" (200 {} to anything), "empty" (the same, but [] to GET
// /nodes/), "list:" and a JSON array (the same, but that array to GET
// /nodes/), "hang" (accept, never answer) or "banner" (a line that is not
// HTTP). It returns their nodes.
func (h *labHost) listen(count int, mode, ip string) []Node {
	var nodes []Node
	for range count {
		var l net.Listener
		err := h.inside(func() (err error) { l, err = net.Listen("tcp", net.JoinHostPort(ip, "0")); return err })
		if err != nil {
			h.lab.t.Fatalf("listen on %s in %s: %v", ip, h.ns, err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		count, _ := h.accepts.LoadOrStore(port, new(atomic.Int64))
		h.serveAs(countingListener{l, count.(*atomic.Int64)}, mode)
		nodes = append(nodes, nodeAt(ip, port))
	}
	return nodes
}

// accepted is how many connections n, a listener of h's, has accepted.
func (h *labHost) accepted(n Node) int {
	count, ok := h.accepts.Load(int(n.Port))
	if !ok {
		return 0
	}
	return int(count.(*atomic.Int64).Load())
}

// hold keeps c to close when the test ends.
func (h *labHost) hold(c io.Closer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.listened = append(h.listened, c)
}

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	count *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.count.Add(1)
	}
	return c, err
}

// serveAs answers connections on l as mode says (see labHost.listen),
// until the test ends.
func (h *labHost) serveAs(l net.Listener, mode string) {
	list, lists := strings.CutPrefix(mode, "list:")
	if mode == "empty" {
		list, lists = "[]", true // a seed that lists nobody
	}
	if mode == "ok" || lists {
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if lists && r.URL.Path == "/nodes/" {
				io.WriteString(w, list+"\n")
				return
			}
			io.WriteString(w, "{}\n")
		})}
		h.hold(srv)
		go srv.Serve(l)
		return
	}
	h.hold(l)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			h.hold(c) // held open until the test ends
			if mode == "banner" {
				io.WriteString(c, "SSH-2.0-SECRET_BANNER\r\n")
			}
			go io.Copy(io.Discard, c)
		}
	}()
}
