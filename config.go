package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

// errUsage means the command line was wrong; the usage has been printed.
var errUsage = errors.New("usage")

// config is the command line, after defaults.
type config struct {
	role              string
	ip                string // where to listen; 0.0.0.0 or :: for every interface
	advertise         string // what announces carry: this process's address to others
	port              int    // -1: the role's default; 0: any free port
	dir, file         string
	interval, timeout seconds
	limit, max, fails int
	hostMax           int
	dnsIP             string
	dnsPort           int
	draw              bool
}

// parseFlags reads the blog's flags; each has a short and a long name, and
// flag accepts both -name and --name.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	c.interval, c.timeout = seconds(60*time.Second), seconds(3*time.Second)
	fs := flag.NewFlagSet("peerdisc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	long := map[string]string{"i": "ip", "a": "advertise", "p": "port", "d": "dir", "n": "nodes", "u": "upd_int", "t": "timeout",
		"k": "kn_limit", "m": "max", "f": "fails", "hm": "host_max", "di": "dns_ip", "dp": "dns_port"} // short name -> long name
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: go run . -role=seed|node|map [flags]\n\nflags (one dash or two):")
		fs.VisitAll(func(f *flag.Flag) {
			if strings.HasPrefix(f.Usage, "same as") {
				return
			}
			name, def := "-"+f.Name, ""
			if long[f.Name] != "" {
				name += ", --" + long[f.Name]
			}
			if f.DefValue != "" && f.DefValue != "0" {
				def = " (default " + f.DefValue + ")"
			}
			fmt.Fprintf(stderr, "  %-20s %s%s\n", name, f.Usage, def)
		})
	}
	fs.StringVar(&c.role, "role", "", "seed, node or map (required)")
	fs.StringVar(&c.ip, "i", "127.0.0.1", "address to listen on; 0.0.0.0 or :: listens on every interface and needs -a")
	fs.StringVar(&c.advertise, "a", "", "address others reach this process at, sent in announces (default: -i)")
	fs.IntVar(&c.port, "p", 0, "port; 0 takes any free port (default: seed 42020, node a free random port in 50000-60000)")
	fs.StringVar(&c.dir, "d", "", "data directory (default: seed .seed, node .node-PORT)")
	fs.StringVar(&c.file, "n", "nodes.json", "known-nodes file inside the data directory")
	fs.Var(&c.interval, "u", "round interval: whole seconds (60) or a Go duration (500ms)")
	fs.Var(&c.timeout, "t", "per-request timeout: whole seconds or a Go duration")
	fs.IntVar(&c.limit, "k", 10, "node: known nodes that are enough to skip the next step of a round")
	fs.IntVar(&c.max, "m", 1000, "most nodes the table holds; map: most processes it asks")
	fs.IntVar(&c.fails, "f", 2, "failed checks in a row that remove a peer")
	fs.IntVar(&c.hostMax, "hm", 8, "most entries with one address (IPv4 or IPv6); loopback is exempt")
	fs.StringVar(&c.dnsIP, "di", "", "node, map: the seed's address (default: from ./nodes.json, else 127.0.0.1)")
	fs.IntVar(&c.dnsPort, "dp", 0, "node, map: the seed's port (default: from ./nodes.json, else 42020)")
	fs.BoolVar(&c.draw, "draw", false, "map: draw the graph even past 50 processes")
	for short, name := range long {
		fs.Var(fs.Lookup(short).Value, name, "same as -"+short)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, errUsage // flag has printed the error and the usage
	}
	if !isSet(fs, "p") && !isSet(fs, "port") {
		c.port = -1
	}
	var bad error
	switch {
	case c.role != "seed" && c.role != "node" && c.role != "map":
		bad = errors.New("-role must be seed, node or map")
	case fs.NArg() > 0:
		bad = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case listenAddr(c.ip) != nil:
		bad = fmt.Errorf("-i: %v", listenAddr(c.ip))
	case c.advertise == "" && netip.MustParseAddr(c.ip).IsUnspecified():
		bad = fmt.Errorf("-i %s listens on every interface: give -a, the address others reach this process at", c.ip)
	case c.advertise != "" && (Node{IP: c.advertise, Port: 1}).Valid() != nil:
		bad = fmt.Errorf("-a: %v", (Node{IP: c.advertise, Port: 1}).Valid())
	case c.port < -1 || c.port > 65535 || c.dnsPort < 0 || c.dnsPort > 65535:
		bad = errors.New("-p must be 0-65535 (0: any free port) and -dp 1-65535")
	case c.dnsIP != "" && (Node{IP: c.dnsIP, Port: 1}).Valid() != nil:
		bad = fmt.Errorf("-di: %v", (Node{IP: c.dnsIP, Port: 1}).Valid())
	case c.limit < 0 || c.max < 1 || c.fails < 1 || c.hostMax < 1:
		bad = errors.New("-k must be at least 0, and -m, -f and -hm at least 1")
	case c.file == "":
		bad = errors.New("-n must name a file")
	}
	if bad != nil {
		fmt.Fprintln(stderr, "error:", bad)
		fs.Usage()
		return c, errUsage
	}
	c.ip = netip.MustParseAddr(c.ip).Unmap().String()
	c.advertise = (Node{IP: cmp.Or(c.advertise, c.ip), Port: 1}).canonical().IP
	return c, nil
}

// listenAddr says why ip cannot be listened on: it must be an address a Node
// could have, or the unspecified address, which means every interface.
func listenAddr(ip string) error {
	if a, err := netip.ParseAddr(ip); err == nil && a.IsUnspecified() {
		return nil
	}
	return (Node{IP: ip, Port: 1}).Valid()
}

// isSet reports whether the command line gave flag name.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// seconds is a duration flag that takes whole seconds, as the blog's did, or a Go duration.
type seconds time.Duration

func (s *seconds) String() string {
	if d := time.Duration(*s); d%time.Second != 0 {
		return d.String()
	}
	return strconv.Itoa(int(time.Duration(*s) / time.Second))
}

func (s *seconds) Set(v string) error {
	d, err := time.ParseDuration(v)
	if n, errInt := strconv.Atoi(v); errInt == nil {
		d, err = time.Duration(n)*time.Second, nil
	}
	if err != nil || d <= 0 {
		return errors.New("want a positive number of seconds or a duration such as 500ms")
	}
	*s = seconds(d)
	return nil
}

// bootstrapSeeds is the list of seeds that step 3 tries in order: the one
// named by -di and -dp, else those in ./nodes.json, else 127.0.0.1:42020.
func bootstrapSeeds(cfg config) ([]Node, error) {
	if cfg.dnsIP != "" || cfg.dnsPort != 0 {
		return []Node{Node{IP: cmp.Or(cfg.dnsIP, "127.0.0.1"), Port: cmp.Or(cfg.dnsPort, seedPort)}.canonical()}, nil
	}
	data, err := os.ReadFile("nodes.json")
	if errors.Is(err, os.ErrNotExist) {
		return []Node{{IP: "127.0.0.1", Port: seedPort}}, nil
	}
	if err != nil {
		return nil, err
	}
	seeds, err := parseNodes(data, maxListEntries)
	if err != nil {
		return nil, fmt.Errorf("nodes.json, the list of seeds: %w", err)
	}
	return seeds, nil
}

// hostAddrs returns a test for "is this address this host's": loopback, or
// one of the addresses of its interfaces when it started. A caller from one
// of those is the operator, even when it does not use loopback.
func hostAddrs() func(netip.Addr) bool {
	own := map[netip.Addr]bool{}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			own[p.Addr().Unmap()] = true
		}
	}
	return func(ip netip.Addr) bool { return ip.IsLoopback() || own[ip] }
}
