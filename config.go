package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// errUsage means the command line was wrong; what is wrong has been printed.
var errUsage = errors.New("usage")

// config is the command line, after defaults.
type config struct {
	role               string
	ip                 netip.Addr // where to listen; 0.0.0.0 or :: for every interface
	advertise          netip.Addr // what announces carry: this process's address to others
	port               int        // -1: the role's default; 0: any free port
	dir, file          string
	interval, timeout  seconds
	enough, max, fails int
	hostMax            int
	dnsIP              netip.Addr // the zero Addr: not given
	dnsPort            int
	draw               bool
	web                string // map: where to serve the live page (host:port); "" prints once
}

// progName is the program as it was started, for messages: "go run ." when
// go run built it in a temporary directory.
func progName(arg0 string) string {
	if strings.Contains(filepath.ToSlash(arg0), "/go-build") {
		return "go run ."
	}
	return arg0
}

// parseFlags reads the blog's flags; each has a short and a long name, and
// flag accepts both -name and --name. A wrong command line gets one line
// that names the wrong flag, and where to find the others.
func parseFlags(name string, args []string, stderr io.Writer) (config, error) {
	var c config
	var ip, advertise, dnsIP string
	c.interval, c.timeout = seconds(defaultInterval), seconds(defaultTimeout)
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	long := map[string]string{ // short name -> long name
		"i": "ip", "a": "advertise", "p": "port", "d": "dir", "n": "nodes", "u": "upd_int",
		"t": "timeout", "k": "kn_limit", "m": "max", "f": "fails", "hm": "host_max",
		"di": "dns_ip", "dp": "dns_port",
	}
	fs.StringVar(&c.role, "role", "", "seed, node or map (required)")
	fs.StringVar(&ip, "i", "127.0.0.1",
		"address to listen on; 0.0.0.0 or :: listens on every interface and needs -a")
	fs.StringVar(&advertise, "a", "",
		"address others reach this process at, sent in announces (default: -i)")
	c.port = -1
	fs.Var(&intFlag{&c.port, 0, 65535}, "p", fmt.Sprintf("port; 0 takes any free port "+
		"(default: seed %d, node a free random port in %d-%d)", seedPort, nodePortMin, nodePortMax))
	fs.StringVar(&c.dir, "d", "", "data directory (default: seed .seed, node .node-PORT)")
	fs.StringVar(&c.file, "n", "nodes.json", "known-nodes file inside the data directory")
	fs.Var(&c.interval, "u", "round interval: whole seconds (60) or a Go duration (500ms), at most a day")
	fs.Var(&c.timeout, "t", "per-request timeout: whole seconds or a Go duration, at most a day")
	c.enough, c.max, c.fails, c.hostMax = defaultEnough, defaultMax, defaultFails, defaultHostMax
	fs.Var(&intFlag{&c.enough, 1, math.MaxInt32}, "k",
		"node: the peers it looks for; below this it looks for more")
	fs.Var(&intFlag{&c.max, 1, math.MaxInt32}, "m",
		"most nodes the table holds; map: most processes it asks")
	fs.Var(&intFlag{&c.fails, 1, math.MaxInt32}, "f", "failed checks in a row that remove a peer")
	fs.Var(&intFlag{&c.hostMax, 1, math.MaxInt32}, "hm",
		"most entries with one address (IPv4 or IPv6); loopback is exempt")
	fs.StringVar(&dnsIP, "di", "",
		"node, map: the seed's address (default: from ./nodes.json, else 127.0.0.1)")
	fs.Var(&intFlag{&c.dnsPort, 1, 65535}, "dp",
		fmt.Sprintf("node, map: the seed's port (default: from ./nodes.json, else %d)", seedPort))
	fs.BoolVar(&c.draw, "draw", false,
		fmt.Sprintf("map: draw the graph even past %d processes", maxDrawn))
	fs.StringVar(&c.web, "web", "",
		"map: serve a live map page at host:port (127.0.0.1:8042) instead of printing once")
	for short, name := range long {
		fs.Var(fs.Lookup(short).Value, name, "same as -"+short)
	}
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		printUsage(stderr, fs, long)
		return c, err
	case err != nil:
		return c, badUsage(stderr, name, err.Error()) // names the flag, and says what it takes
	}
	var bad, badIP, badAdvertise, badDNS string
	c.ip, badIP = flagAddr("-i", ip, true)
	c.advertise, badAdvertise = flagAddr("-a", advertise, false)
	c.dnsIP, badDNS = flagAddr("-di", dnsIP, false)
	switch {
	case c.role == "":
		bad = "-role is required: seed, node or map"
	case c.role != "seed" && c.role != "node" && c.role != "map":
		bad = fmt.Sprintf("-role %q: want seed, node or map", c.role)
	case fs.NArg() > 0:
		bad = fmt.Sprintf("unexpected argument %q: flags come as -name value", fs.Arg(0))
	case badIP != "":
		bad = badIP
	case advertise == "" && c.ip.IsUnspecified():
		bad = fmt.Sprintf("-i %s listens on every interface: "+
			"give -a, the address others reach this process at", ip)
	case badAdvertise != "":
		bad = badAdvertise
	case badDNS != "":
		bad = badDNS
	case c.file == "" || filepath.Base(c.file) != c.file || c.file == "." || c.file == "..":
		bad = fmt.Sprintf("-n %q: want a file name without a directory; the directory is -d", c.file)
	case c.web != "" && c.role != "map":
		bad = "-web serves the network map: it goes with -role=map"
	case badWeb(c.web) != "":
		bad = badWeb(c.web)
	}
	if bad != "" {
		return c, badUsage(stderr, name, bad)
	}
	if advertise == "" {
		c.advertise = c.ip
	}
	return c, nil
}

// badUsage prints what is wrong with the command line, in one line, and
// where to find the flags.
func badUsage(stderr io.Writer, name, msg string) error {
	fmt.Fprintf(stderr, "error: %s\nrun '%s -h' for the flags\n", msg, name)
	return errUsage
}

// printUsage is -h: every flag, short and long name, and its default.
func printUsage(stderr io.Writer, fs *flag.FlagSet, long map[string]string) {
	fmt.Fprintf(stderr, "usage: %s -role=seed|node|map [flags]\n\n", fs.Name())
	fmt.Fprintln(stderr, "flags (one dash or two):")
	fs.VisitAll(func(f *flag.Flag) {
		if strings.HasPrefix(f.Usage, "same as") {
			return
		}
		name, def := "-"+f.Name, ""
		if long[f.Name] != "" {
			name += ", --" + long[f.Name]
		}
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "-1" && f.DefValue != "false" {
			def = " (default " + f.DefValue + ")"
		}
		fmt.Fprintf(stderr, "  %-20s %s%s\n", name, f.Usage, def)
	})
}

// intFlag is a whole-number flag with its allowed range, so that a wrong
// value is named with what the flag takes.
type intFlag struct {
	v        *int
	min, max int
}

func (f *intFlag) String() string {
	if f.v == nil {
		return ""
	}
	return strconv.Itoa(*f.v)
}

func (f *intFlag) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < f.min || n > f.max {
		if f.max == math.MaxInt32 {
			return fmt.Errorf("want a whole number, %d or more", f.min)
		}
		return fmt.Errorf("want a whole number from %d to %d", f.min, f.max)
	}
	*f.v = n
	return nil
}

// flagAddr parses the address given to flag name, through the door every
// address comes in by (parseIP), and says what is wrong with it, if
// anything: it must be an IP literal that a Node can have, or, where the
// process listens, the unspecified address, which means every interface.
// An empty ip is the zero Addr.
func flagAddr(name, ip string, listen bool) (netip.Addr, string) {
	a, err := parseIP(ip)
	switch {
	case ip == "":
		return netip.Addr{}, ""
	case err != nil:
		return a, fmt.Sprintf("%s %q: want an IP address, such as 127.0.0.2 or fd00::11, "+
			"not a host name", name, ip)
	case listen && a.IsUnspecified():
		return a, ""
	case a.Zone() != "":
		return a, fmt.Sprintf("%s %s: a zone means nothing to other hosts: "+
			"give an address without one", name, ip)
	case a.IsLinkLocalUnicast() && a.Is6():
		return a, fmt.Sprintf("%s %s: link-local addresses need a zone, such as %s%%eth0, "+
			"and other hosts do not take them: give another address of this host, or -i :: with -a",
			name, ip, a.WithZone(""))
	case a.IsUnspecified():
		return a, fmt.Sprintf("%s %s: give an address others can reach, not the unspecified one", name, ip)
	case a.IsMulticast() || a == broadcast:
		return a, fmt.Sprintf("%s %s is a multicast or broadcast address: give this host's own", name, ip)
	}
	return a, ""
}

// badWeb says what is wrong with -web's address, if anything: host:port,
// where the host is an IP address or empty. An empty host means loopback,
// not every interface, so that the page goes to other hosts only when
// asked; -web 0.0.0.0:8042 asks.
func badWeb(web string) string {
	host, port, err := net.SplitHostPort(web)
	n, errPort := strconv.Atoi(port)
	_, errHost := netip.ParseAddr(host)
	badPort := errPort != nil || n < 0 || n > 65535
	if web != "" && (err != nil || badPort || host != "" && errHost != nil) {
		return fmt.Sprintf("-web %q: want host:port to serve the map page at, such as 127.0.0.1:8042",
			web)
	}
	return ""
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
	if n, errInt := strconv.ParseInt(v, 10, 64); errInt == nil {
		d, err = time.Duration(min(n, int64(maxSeconds/time.Second)+1))*time.Second, nil // no wrap
	}
	if err != nil || d <= 0 {
		return errors.New("want a positive number of seconds or a duration such as 500ms")
	}
	if d > maxSeconds { // the rounds' sums of -u and -t would wrap
		return fmt.Errorf("want at most %d seconds (a day)", maxSeconds/time.Second)
	}
	*s = seconds(d)
	return nil
}

// bootstrapSeeds is the list of seeds a node announces to and takes
// candidates from, all of them each round: the one named by -di and -dp,
// else those in ./nodes.json, else 127.0.0.1:42020.
func bootstrapSeeds(cfg config) ([]Node, error) {
	defaultSeed := Node{IP: netip.AddrFrom4([4]byte{127, 0, 0, 1}), Port: seedPort}
	if cfg.dnsIP.IsValid() || cfg.dnsPort != 0 {
		seed := defaultSeed
		if cfg.dnsIP.IsValid() {
			seed.IP = cfg.dnsIP
		}
		if cfg.dnsPort != 0 {
			seed.Port = uint16(cfg.dnsPort)
		}
		return []Node{seed}, nil
	}
	data, err := os.ReadFile("nodes.json")
	if errors.Is(err, os.ErrNotExist) {
		return []Node{defaultSeed}, nil
	}
	if err != nil {
		return nil, err
	}
	seeds, err := parseNodes(data, maxListEntries)
	if err != nil {
		return nil, fmt.Errorf("nodes.json, the list of seeds: %w", err)
	}
	if len(seeds) == 0 {
		return nil, errors.New("nodes.json, the list of seeds, lists none: list one there, or give -di and -dp")
	}
	return seeds, nil
}
