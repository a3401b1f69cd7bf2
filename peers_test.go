package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/matryer/is"
)

// invalidNodes are bodies that no endpoint may accept.
var invalidNodes = []struct{ name, json string }{
	{"empty", ``},
	{"not json", `hello`},
	{"null", `null`},
	{"array", `[{"ip_address": "127.0.0.1", "port": 55000}]`},
	{"string", `"127.0.0.1:55000"`},
	{"empty object", `{}`},
	{"missing port", `{"ip_address": "127.0.0.1"}`},
	{"missing ip", `{"port": 55000}`},
	{"null ip", `{"ip_address": null, "port": 55000}`},
	{"null port", `{"ip_address": "127.0.0.1", "port": null}`},
	{"unknown field", `{"ip_address": "127.0.0.1", "port": 55000, "name": "x"}`},
	{"key in other case", `{"IP_ADDRESS": "127.0.0.1", "port": 55000}`},
	{"trailing object", `{"ip_address": "127.0.0.1", "port": 55000}{}`},
	{"trailing garbage", `{"ip_address": "127.0.0.1", "port": 55000} x`},
	{"port as string", `{"ip_address": "127.0.0.1", "port": "55000"}`},
	{"port fraction", `{"ip_address": "127.0.0.1", "port": 55000.5}`},
	{"port zero", `{"ip_address": "127.0.0.1", "port": 0}`},
	{"port negative", `{"ip_address": "127.0.0.1", "port": -1}`},
	{"port too big", `{"ip_address": "127.0.0.1", "port": 65536}`},
	{"port huge", `{"ip_address": "127.0.0.1", "port": 1e30}`},
	{"ip as number", `{"ip_address": 2130706433, "port": 55000}`},
	{"host name", `{"ip_address": "localhost", "port": 55000}`},
	{"port inside ip", `{"ip_address": "127.0.0.1:55000", "port": 55000}`},
	{"bracketed ipv6", `{"ip_address": "[::1]", "port": 55000}`},
	{"ipv6 zone", `{"ip_address": "fe80::1%eth0", "port": 55000}`},
	{"unspecified v4", `{"ip_address": "0.0.0.0", "port": 55000}`},
	{"unspecified v6", `{"ip_address": "::", "port": 55000}`},
	{"multicast", `{"ip_address": "224.0.0.1", "port": 55000}`},
	{"multicast v6", `{"ip_address": "ff02::1", "port": 55000}`},
	{"leading zeros", `{"ip_address": "127.000.000.001", "port": 55000}`},
	{"empty ip", `{"ip_address": "", "port": 55000}`},
	{"duplicate ip", `{"ip_address": "127.0.0.1", "ip_address": "127.0.0.2", "port": 55000}`},
	{"duplicate port", `{"ip_address": "127.0.0.1", "port": 55000, "port": 1}`},
}

func TestNodeValidation(t *testing.T) {
	valid := []struct{ name, json, want string }{
		{"ipv4", `{"ip_address": "127.0.0.1", "port": 55000}`, "127.0.0.1:55000"},
		{"keys in any order", `{"port": 1, "ip_address": "10.0.0.7"}`, "10.0.0.7:1"},
		{"top port", `{"ip_address": "127.0.0.1", "port": 65535}`, "127.0.0.1:65535"},
		{"ipv6", `{"ip_address": "::1", "port": 55000}`, "[::1]:55000"},
		{"ipv6 long form", `{"ip_address": "0:0:0:0:0:0:0:1", "port": 55000}`, "[::1]:55000"},
		{"ipv4-mapped ipv6", `{"ip_address": "::ffff:127.0.0.2", "port": 55000}`, "127.0.0.2:55000"},
		{"whitespace around", " \n{\"ip_address\":\"127.0.0.1\",\"port\":5}\n ", "127.0.0.1:5"},
	}
	for _, tc := range valid {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			n, err := decodeNode(strings.NewReader(tc.json))
			is.NoErr(err)                 // valid node
			is.Equal(n.String(), tc.want) // canonical address
			is.NoErr(n.Valid())           // decoded nodes are valid
			is.Equal(n, n.canonical())    // decoded nodes are canonical
		})
	}
	for _, tc := range invalidNodes {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			_, err := decodeNode(strings.NewReader(tc.json))
			is.True(err != nil) // invalid node must be rejected
		})
	}
}

// FuzzDecodeNode checks that the decoder never panics and that whatever it
// accepts is a valid, canonical node that survives a round trip.
func FuzzDecodeNode(f *testing.F) {
	for _, tc := range invalidNodes {
		f.Add([]byte(tc.json))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := decodeNode(bytes.NewReader(data))
		if err != nil {
			return
		}
		if err := n.Valid(); err != nil {
			t.Fatalf("accepted an invalid node %+v: %v", n, err)
		}
		if n != n.canonical() {
			t.Fatalf("accepted node %+v is not canonical", n)
		}
		enc, _ := json.Marshal(n)
		back, err := decodeNode(bytes.NewReader(enc))
		if err != nil || back != n {
			t.Fatalf("round trip of %+v gave %+v, %v", n, back, err)
		}
	})
}

// FuzzParseNodes checks that the list parser never panics, never returns more
// than its bound, and returns only valid, canonical nodes.
func FuzzParseNodes(f *testing.F) {
	f.Add([]byte(`[{"ip_address": "127.0.0.1", "port": 1}, 0, {"ip_address": "::1", "port": 2}]`), 1)
	f.Add([]byte(`[0,0,0,0]`), 2)
	f.Add([]byte(`[{"port": 1, "port": 2}]`), 5)
	f.Fuzz(func(t *testing.T, data []byte, limit int) {
		limit = 1 + abs(limit)%20
		nodes, _ := parseNodes(data, limit)
		if len(nodes) > limit {
			t.Fatalf("%d nodes from a list bounded at %d", len(nodes), limit)
		}
		for _, n := range nodes {
			if n.Valid() != nil || n != n.canonical() {
				t.Fatalf("returned %+v, which is not a valid canonical node", n)
			}
		}
	})
}

func abs(x int) int { return max(x, -x) }
