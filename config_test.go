package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
)

// TestRunUsage: a wrong command line gets two lines, what is wrong, naming
// only the wrong flag, and where to find the flags; exit status 2.
func TestRunUsage(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no role", nil, "error: -role is required: seed, node or map"},
		{"bad role", []string{"-role=miner"}, `error: -role "miner": want seed, node or map`},
		{"unknown flag", []string{"-role=seed", "-x"}, "error: flag provided but not defined: -x"},
		{"bad interval", []string{"-role=seed", "-u", "soon"}, `error: invalid value "soon" for flag -u: want a positive number of seconds or a duration such as 500ms`},
		{"interval past a duration", []string{"-role=seed", "-u", "18446744074"},
			`error: invalid value "18446744074" for flag -u: want at most 86400 seconds (a day)`},
		{"timeout past a duration", []string{"-role=seed", "-t", "18446744074"},
			`error: invalid value "18446744074" for flag -t: want at most 86400 seconds (a day)`},
		{"timeout just past a duration", []string{"-role=node", "--timeout", "9223372037"},
			`error: invalid value "9223372037" for flag -timeout: want at most 86400 seconds (a day)`},
		{"interval that jitter would wrap", []string{"-role=node", "-u", "9223372036"},
			`error: invalid value "9223372036" for flag -u: want at most 86400 seconds (a day)`},
		{"interval as a duration past a day", []string{"-role=node", "-u", "2562047h"},
			`error: invalid value "2562047h" for flag -u: want at most 86400 seconds (a day)`},
		{"timeout just past a day", []string{"-role=node", "-t", "86401"},
			`error: invalid value "86401" for flag -t: want at most 86400 seconds (a day)`},
		{"host name", []string{"-role=node", "--ip", "localhost"}, `error: -i "localhost": want an IP address, such as 127.0.0.2 or fd00::11, not a host name`},
		{"port out of range", []string{"-role=seed", "-p", "70000"}, `error: invalid value "70000" for flag -p: want a whole number from 0 to 65535`},
		{"seed port out of range", []string{"-role=node", "-dp", "99999"}, `error: invalid value "99999" for flag -dp: want a whole number from 1 to 65535`},
		{"-m 0", []string{"-role=seed", "-m", "0"}, `error: invalid value "0" for flag -m: want a whole number, 1 or more`},
		{"-k not a number", []string{"-role=node", "--kn_limit", "ten"}, `error: invalid value "ten" for flag -kn_limit: want a whole number, 1 or more`},
		{"-k 0", []string{"-role=node", "-k", "0"}, `error: invalid value "0" for flag -k: want a whole number, 1 or more`},
		{"every interface without -a", []string{"-role=node", "-i", "0.0.0.0"}, "error: -i 0.0.0.0 listens on every interface: give -a"},
		{"every ipv6 interface without -a", []string{"-role=seed", "-i", "::"}, "error: -i :: listens on every interface: give -a"},
		{"unspecified -a", []string{"-role=node", "-i", "0.0.0.0", "-a", "0.0.0.0"}, "error: -a "},
		{"-a a host name", []string{"-role=node", "-a", "localhost"}, "error: -a "},
		{"-n with a directory", []string{"-role=node", "-n", "sub/x.json"}, `error: -n "sub/x.json": want a file name without a directory; the directory is -d`},
		{"link-local without a zone", []string{"-role=node", "-i", "fe80::1"}, "error: -i fe80::1: link-local addresses need a zone, such as fe80::1%eth0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			var stderr bytes.Buffer
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // a command line that is taken runs a role, which stops at once
			err := run(ctx, append([]string{"./peerdisc"}, tc.args...), io.Discard, &stderr)
			is.Equal(exitCode(err, &stderr), 2) // exit status of a bad command line
			lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
			is.Equal(len(lines), 2)                                 // one line of error, one of help; not the whole usage
			is.True(strings.HasPrefix(lines[0], tc.wantErr))        // names what is wrong, and only that
			is.Equal(lines[1], "run './peerdisc -h' for the flags") // as the program was started
		})
	}
}

func TestHelp(t *testing.T) {
	is := is.New(t)
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"/tmp/go-build123/b001/exe/peerdisc", "-h"}, io.Discard, &stderr)
	is.Equal(exitCode(err, &stderr), 0)
	is.True(strings.HasPrefix(stderr.String(), "usage: go run . -role=seed|node|map")) // go run's binary says go run .
	is.True(strings.Contains(stderr.String(), "-k, --kn_limit"))
	is.True(strings.Contains(stderr.String(), "(default 10)"))
}

func TestSecondsFlag(t *testing.T) {
	is := is.New(t)
	var s seconds
	is.NoErr(s.Set("60"))
	is.Equal(time.Duration(s), time.Minute) // whole seconds
	is.NoErr(s.Set("500ms"))
	is.Equal(time.Duration(s), 500*time.Millisecond) // Go duration
	is.True(s.Set("0") != nil)                       // must be positive
	is.True(s.Set("-1s") != nil)                     // must be positive
}

func TestBootstrapSeeds(t *testing.T) {
	tests := []struct {
		name string
		ip   string
		port int
		want []Node
	}{
		{"committed nodes.json", "", 0, []Node{nodeAt("127.0.0.1", 42020)}},
		{"-di alone", "127.0.0.7", 0, []Node{nodeAt("127.0.0.7", 42020)}},
		{"-dp alone", "", 4000, []Node{nodeAt("127.0.0.1", 4000)}},
		{"both", "::ffff:127.0.0.8", 4000, []Node{nodeAt("127.0.0.8", 4000)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			args := []string{"-role=node"}
			if tc.ip != "" {
				args = append(args, "-di", tc.ip)
			}
			if tc.port != 0 {
				args = append(args, "-dp", strconv.Itoa(tc.port))
			}
			cfg, err := parseFlags("peerdisc", args, io.Discard)
			is.NoErr(err)
			seeds, err := bootstrapSeeds(cfg)
			is.NoErr(err)
			is.Equal(seeds, tc.want) // the seeds tried in step 3
		})
	}
}

func TestAdvertise(t *testing.T) {
	tests := []struct {
		args          []string
		ip, advertise string
	}{
		{[]string{"-role=node"}, "127.0.0.1", "127.0.0.1"},
		{[]string{"-role=node", "-i", "127.0.0.2"}, "127.0.0.2", "127.0.0.2"},
		{[]string{"-role=node", "-i", "0.0.0.0", "-a", "192.0.2.7"}, "0.0.0.0", "192.0.2.7"},
		{[]string{"-role=node", "--ip", "::", "--advertise", "::ffff:192.0.2.7"}, "::", "192.0.2.7"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			is := is.New(t)
			cfg, err := parseFlags("peerdisc", tc.args, io.Discard)
			is.NoErr(err)
			is.Equal(cfg.ip.String(), tc.ip)               // where it listens
			is.Equal(cfg.advertise.String(), tc.advertise) // what it announces
		})
	}
}

// TestNoSeedIsAnError: a ./nodes.json that lists no seed, and no -di or
// -dp, is an error at start that says what to do, not a node that stays
// alone without a word; and so is a seed list that names only the node.
func TestNoSeedIsAnError(t *testing.T) {
	is := is.New(t)
	dir := t.TempDir()
	is.NoErr(os.WriteFile(filepath.Join(dir, "nodes.json"), []byte("[]\n"), 0o644))
	t.Chdir(dir)
	cfg, err := parseFlags("peerdisc", []string{"-role=node"}, io.Discard)
	is.NoErr(err)
	_, err = bootstrapSeeds(cfg)
	is.True(err != nil)
	is.True(strings.Contains(err.Error(), "-di")) // says what to do

	// nor one whose only seed is itself
	port := strconv.Itoa(int(deadAddr(t).Port))
	cfg, err = parseFlags("peerdisc", []string{"-role=node", "-p", port, "-dp", port, "-d", "data"}, io.Discard)
	is.NoErr(err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // a bound for a node that would run
	defer cancel()
	err = runNode(ctx, cfg, quiet)
	is.True(err != nil)
	is.True(strings.Contains(err.Error(), "-di"))
}
