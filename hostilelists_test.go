package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
)

func TestListFromHostilePeer(t *testing.T) {
	tests := []struct {
		name, body string
		want       []Node // nil: the list is refused
	}{
		{"invalid entries skipped",
			`[{"ip_address": "localhost", "port": 1}, {"ip_address": "127.0.0.5", "port": 5000}, "x", null, 7]`,
			[]Node{nodeAt("127.0.0.5", 5000)}},
		{"one entry named again and again, counted once",
			"[" + strings.Repeat(`{"ip_address": "127.0.0.5", "port": 5000},`, 255) + `{"ip_address": "127.0.0.6", "port": 5000}]`,
			[]Node{nodeAt("127.0.0.5", 5000), nodeAt("127.0.0.6", 5000)}},
		{"not a list", `{"ip_address": "127.0.0.5", "port": 5000}`, nil},
		{"garbage", `<html>`, nil},
		{"over the limit", "[" + strings.Repeat(`{"ip_address": "127.0.0.5", "port": 5000},`, maxListBody/40) + `{"ip_address": "127.0.0.5", "port": 5000}]`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, tc.body) }))
			defer peer.Close()
			got, err := newPeerClient(2*time.Second, self).list(context.Background(), nodeOf(t, peer.URL), 0)
			is.Equal(got, tc.want)               // what is learned
			is.Equal(err != nil, tc.want == nil) // refused lists are errors
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
		if !inOneSpelling(n) {
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
			if n.Valid() != nil || !inOneSpelling(n) {
				t.Fatalf("returned %+v, which is not a valid canonical node", n)
			}
		}
	})
}
