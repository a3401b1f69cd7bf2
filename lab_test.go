//go:build linux

package main

// A lab of hosts, for what loopback cannot show: network namespaces on one
// bridge, with private addresses (10.77.0.0/24, fd77::/64) that exist only
// inside them, made by the test and removed when it ends, however it ends.
// The lab is never joined to this machine's own network. The test reaches it
// through a gateway on each host it speaks from: the test binary itself, run
// inside that host, serving HTTP on a unix socket (which no network
// namespace hides) and making each request from inside the host.
// It needs root and ip (iproute2), and skips without them.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func init() { helpers["labgate"] = labGate }

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
	lab    *lab
	ns     string
	v4, v6 string
	eth    string       // its interface, as the bridge's namespace names the other end
	client *http.Client // requests from inside this host, once gate has run
	gated  sync.Once
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
	removeStaleLabs()
	l := &lab{t: t, name: fmt.Sprintf("pdlab%d-%d", os.Getpid(), labSeq.Add(1)), dir: t.TempDir()}
	sw := l.name + "-sw"
	l.netns(sw)
	l.ip("-n", sw, "link", "add", "br0", "type", "bridge")
	l.ip("-n", sw, "link", "set", "br0", "up")
	for i := range n {
		h := &labHost{lab: l, ns: fmt.Sprintf("%s-h%d", l.name, i), v4: fmt.Sprintf("10.77.0.%d", i+1), v6: fmt.Sprintf("fd77::%d", i+1), eth: fmt.Sprintf("v%d", i)}
		l.netns(h.ns)
		l.ip("-n", h.ns, "link", "set", "lo", "up")
		l.ip("-n", h.ns, "link", "add", "eth0", "type", "veth", "peer", "name", h.eth, "netns", sw)
		l.ip("-n", sw, "link", "set", h.eth, "master", "br0", "up")
		l.ip("-n", h.ns, "addr", "add", h.v4+"/24", "dev", "eth0")
		l.ip("-n", h.ns, "addr", "add", h.v6+"/64", "dev", "eth0", "nodad")
		l.ip("-n", h.ns, "link", "set", "eth0", "up")
		l.hosts = append(l.hosts, h)
	}
	return l
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

// addAddress gives h another address, prefix its length (10.90.0.1/16,
// fd90::1/64), reachable on the lab's link whatever its subnet.
func (h *labHost) addAddress(prefix string) {
	args := []string{"-n", h.ns, "addr", "add", prefix, "dev", "eth0"}
	if strings.Contains(prefix, ":") {
		args = append(args, "nodad")
	}
	h.lab.ip(args...)
}

// onLink routes all of 10.0.0.0/8 and fd00::/8 over h's link, so that
// hosts given addresses outside the lab's own subnets still reach each other.
func (h *labHost) onLink() {
	h.lab.ip("-n", h.ns, "route", "add", "10.0.0.0/8", "dev", "eth0")
	h.lab.ip("-n", h.ns, "-6", "route", "add", "fd00::/8", "dev", "eth0")
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
	p := launchCmd(t, dir, exec.Command("ip", append([]string{"netns", "exec", h.ns, binary(t)}, args...)...))
	p.waitStarted(t)
	return p
}

// gate starts h's gateway, once, and returns a client whose requests come
// from inside h. The host "lab" is the gateway itself (see labGate).
func (h *labHost) gate() *http.Client {
	t := h.lab.t
	h.gated.Do(func() {
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		sock := filepath.Join(h.lab.dir, filepath.Base(h.ns)+".sock")
		cmd := exec.Command("ip", "netns", "exec", h.ns, exe)
		cmd.Env = append(os.Environ(), "PEERDISC_HELPER=labgate", "PEERDISC_LABGATE="+sock, "PEERDISC_LABHOST="+h.v4+","+h.v6)
		launchCmd(t, h.lab.dir, cmd)
		eventually(t, 10*time.Second, func() bool {
			c, err := net.Dial("unix", sock) // listening, not only bound
			if err == nil {
				c.Close()
			}
			return err == nil
		})
		h.client = &http.Client{
			Timeout: 20 * time.Second,
			Transport: &http.Transport{
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					return (&net.Dialer{}).DialContext(ctx, "unix", sock)
				},
				MaxIdleConnsPerHost: 300,
			},
		}
	})
	return h.client
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
		req.Header.Set("X-Lab-From", from)
	}
	resp, err := h.gate().Do(req)
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

// listen opens count listeners on h's address of the given family that
// answer as mode says: "ok" (200 {} to anything), "empty" (the same, but
// [] to GET /nodes/), "hang" (accept, never answer) or "banner" (a line
// that is not HTTP). It returns their nodes.
func (h *labHost) listen(count int, mode, ip string) []Node {
	status, body := h.do("GET", Node{IP: "lab", Port: 80}, fmt.Sprintf("/listen?n=%d&mode=%s&ip=%s", count, mode, ip), "")
	var ports []int
	if status != 200 || json.Unmarshal([]byte(body), &ports) != nil {
		h.lab.t.Fatalf("listen on %s: %d %s", h.ns, status, body)
	}
	nodes := make([]Node, len(ports))
	for i, p := range ports {
		nodes[i] = Node{IP: ip, Port: p}
	}
	return nodes
}

// labGate is the gateway: it serves HTTP on the unix socket
// $PEERDISC_LABGATE, forwarding each request to the host it names, and
// opens listeners for the test on http://lab/listen.
func labGate() int {
	ln, err := net.Listen("unix", os.Getenv("PEERDISC_LABGATE"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	type fromKey struct{}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme, r.Out.URL.Host = "http", r.In.Host
			if from := r.In.Header.Get("X-Lab-From"); from != "" { // send from this address of the host's
				r.Out = r.Out.WithContext(context.WithValue(r.Out.Context(), fromKey{}, from))
			}
		},
		Transport: &http.Transport{DisableKeepAlives: true, ResponseHeaderTimeout: 15 * time.Second,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				var d net.Dialer
				if from, ok := ctx.Value(fromKey{}).(string); ok {
					d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
				}
				return d.DialContext(ctx, network, addr)
			}},
	}
	mux := http.NewServeMux()
	mux.Handle("/", proxy)
	mux.HandleFunc("lab/accepted", func(w http.ResponseWriter, r *http.Request) {
		port, _ := strconv.Atoi(r.FormValue("port"))
		fmt.Fprint(w, accepted(port).Load())
	})
	mux.HandleFunc("lab/listen", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.FormValue("n"))
		var ports []int
		for range n {
			l, err := net.Listen("tcp", net.JoinHostPort(r.FormValue("ip"), "0"))
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			ports = append(ports, l.Addr().(*net.TCPAddr).Port)
			go serveAs(l, r.FormValue("mode"))
		}
		json.NewEncoder(w).Encode(ports)
	})
	http.Serve(ln, mux)
	return 0
}

// acceptedOn counts the connections each listener of the gateway's accepted.
var acceptedOn sync.Map // port -> *atomic.Int64

func accepted(port int) *atomic.Int64 {
	n, _ := acceptedOn.LoadOrStore(port, new(atomic.Int64))
	return n.(*atomic.Int64)
}

// accepted is how many connections n, a listener of h's gateway, has accepted.
func (h *labHost) accepted(n Node) int {
	_, body := h.do("GET", Node{IP: "lab", Port: 80}, "/accepted?port="+strconv.Itoa(n.Port), "")
	count, _ := strconv.Atoi(body)
	return count
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

// serveAs answers connections on l as mode says (see labHost.listen).
func serveAs(l net.Listener, mode string) {
	count := accepted(l.Addr().(*net.TCPAddr).Port)
	if mode == "ok" || mode == "empty" {
		http.Serve(countingListener{l, count}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if mode == "empty" && r.URL.Path == "/nodes/" {
				io.WriteString(w, "[]\n") // a seed that lists nobody
				return
			}
			io.WriteString(w, "{}\n")
		}))
		return
	}
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		count.Add(1)
		if mode == "banner" {
			io.WriteString(c, "SSH-2.0-SECRET_BANNER\r\n")
		}
		go io.Copy(io.Discard, c) // held open until the gateway exits
	}
}
