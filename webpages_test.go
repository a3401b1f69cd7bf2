package main

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/matryer/is"
)

// TestWebPagesCannotChangeTheTable: requests from this host that a web
// page sends, from another origin or by a name of its own that resolves
// to 127.0.0.1 (DNS rebinding), change nothing and get 403 as JSON; curl's
// and a node's, by address or localhost, are the operator's.
func TestWebPagesCannotChangeTheTable(t *testing.T) {
	known := nodeAt("127.0.0.5", 5000)
	add := nodeBody(nodeAt("127.0.0.9", 9000))
	for _, tc := range []struct {
		name, method, path, body, host string
		header                         [2]string
		wantStatus                     int
	}{
		{"add, Host a name", "POST", "/nodes/", add, "rebind.example.com:42020", [2]string{}, 403},
		{"remove, Host a name", "DELETE", "/nodes/", nodeBody(known), "rebind.example.com:42020", [2]string{}, 403},
		{"announce, Host a name", "POST", "/", add, "rebind.example.com", [2]string{}, 403},
		{"add, cross-site", "POST", "/nodes/", add, "127.0.0.1:42020",
			[2]string{"Sec-Fetch-Site", "cross-site"}, 403},
		{"add, same-site", "POST", "/nodes/", add, "127.0.0.1:42020",
			[2]string{"Sec-Fetch-Site", "same-site"}, 403},
		{"remove, another origin", "DELETE", "/nodes/", nodeBody(known), "127.0.0.1:42020",
			[2]string{"Origin", "http://127.0.0.1:8000"}, 403},
		{"announce, another origin", "POST", "/", add, "127.0.0.1:42020",
			[2]string{"Origin", "http://evil.example"}, 403},
		{"add by address", "POST", "/nodes/", add, "127.0.0.1:42020", [2]string{}, 200},
		{"add by IPv6 address", "POST", "/nodes/", add, "[::1]:42020", [2]string{}, 200},
		{"add by localhost", "POST", "/nodes/", add, "localhost:42020", [2]string{}, 200},
		{"add, same origin", "POST", "/nodes/", add, "127.0.0.1:42020",
			[2]string{"Sec-Fetch-Site", "same-origin"}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			is := is.New(t)
			tbl := newTable(t, 10, known)
			req := newRequest(tc.method, tc.path, strings.NewReader(tc.body))
			req.RemoteAddr, req.Host = "127.0.0.1:40000", tc.host
			if tc.header[0] != "" {
				req.Header.Set(tc.header[0], tc.header[1])
			}
			before := string(tbl.Body())
			w := httptest.NewRecorder()
			newHandler(tbl, alive).ServeHTTP(w, req)
			is.Equal(w.Code, tc.wantStatus) // status
			if tc.wantStatus == 403 {
				var e struct{ Error string }
				is.NoErr(json.Unmarshal(w.Body.Bytes(), &e))
				is.True(e.Error != "")               // says why, as JSON
				is.Equal(string(tbl.Body()), before) // and nothing changed
			}
		})
	}
	t.Run("list, Host a name", func(t *testing.T) {
		is := is.New(t)
		tbl := newTable(t, 10, known)
		req := newRequest("GET", "/nodes/", nil)
		req.RemoteAddr, req.Host = "127.0.0.1:40000", "rebind.example.com:42020"
		w := httptest.NewRecorder()
		newHandler(tbl, alive).ServeHTTP(w, req)
		is.Equal(w.Body.String(), "[]\n") // a page by a name of its own sees what another host sees
	})
}
