package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
)

func TestRunUsage(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"no role", nil, 2, "-role"},
		{"bad role", []string{"-role=miner"}, 2, "-role"},
		{"unknown flag", []string{"-role=seed", "-x"}, 2, "not defined"},
		{"bad interval", []string{"-role=seed", "-u", "soon"}, 2, "seconds"},
		{"host name", []string{"-role=node", "--ip", "localhost"}, 2, "not an IP"},
		{"port out of range", []string{"-role=seed", "-p", "70000"}, 2, "-p must be 0-65535"},
		{"every interface without -a", []string{"-role=node", "-i", "0.0.0.0"}, 2, "give -a"},
		{"every ipv6 interface without -a", []string{"-role=seed", "-i", "::"}, 2, "give -a"},
		{"unspecified -a", []string{"-role=node", "-i", "0.0.0.0", "-a", "0.0.0.0"}, 2, "-a:"},
		{"-a a host name", []string{"-role=node", "-a", "localhost"}, 2, "-a:"},
		{"help", []string{"-h"}, 0, "-k, --kn_limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			var stderr bytes.Buffer
			err := run(context.Background(), append([]string{"peerdisc"}, tc.args...), io.Discard, &stderr)
			is.Equal(exitCode(err, &stderr), tc.wantCode)                 // exit status
			is.True(strings.Contains(stderr.String(), tc.wantErr))        // says what is wrong
			is.True(strings.Contains(stderr.String(), "usage: go run .")) // prints the usage
		})
	}
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
		{"committed nodes.json", "", 0, []Node{{IP: "127.0.0.1", Port: 42020}}},
		{"-di alone", "127.0.0.7", 0, []Node{{IP: "127.0.0.7", Port: 42020}}},
		{"-dp alone", "", 4000, []Node{{IP: "127.0.0.1", Port: 4000}}},
		{"both", "::ffff:127.0.0.8", 4000, []Node{{IP: "127.0.0.8", Port: 4000}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			seeds, err := bootstrapSeeds(config{dnsIP: tc.ip, dnsPort: tc.port})
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
			cfg, err := parseFlags(tc.args, io.Discard)
			is.NoErr(err)
			is.Equal(cfg.ip, tc.ip)               // where it listens
			is.Equal(cfg.advertise, tc.advertise) // what it announces
		})
	}
}
