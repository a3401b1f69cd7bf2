package main

// Web pages: what stops a page that the operator has open in a browser
// from using the API. A browser on the operator's machine calls loopback
// too, so a caller's address alone does not make it the operator. A page
// on another origin can send a "simple" POST, with no preflight, that
// carries no answer back but changes the table all the same; so a
// state-changing request (POST, DELETE) that a browser sends from another
// origin is refused, whoever's address it comes from (Go's
// CrossOriginProtection reads Sec-Fetch-Site and Origin). A page whose own
// name resolves to 127.0.0.1 (DNS rebinding) is same-origin to the
// browser; but its requests name it in their Host header, and the operator
// is only a caller that names an IP address or localhost, as curl, a node
// and the blog's client do (TestWebPagesCannotChangeTheTable,
// TestBrowserPageCannotPost). The map page (-web) is served the same way:
// only to a Host that is an address or localhost.

import (
	"net"
	"net/http"
	"strings"
)

// errOtherOrigin refuses a state-changing request from a page of another origin.
const errOtherOrigin = "a web page of another origin may not change this process's table"

// sameOrigin refuses, with 403, a state-changing request that a browser
// sends from another origin; every other request goes to h.
func sameOrigin(h http.Handler) http.Handler {
	cross := http.NewCrossOriginProtection()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cross.Check(r) != nil {
			writeError(w, http.StatusForbidden, errOtherOrigin)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// namedByAddress reports whether r's Host header names an IP address or
// localhost: a page reached by a name of its own names that instead.
func namedByAddress(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host // no port
	}
	if host == "localhost" {
		return true
	}
	_, err = parseIP(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	return err == nil
}

// byAddressOnly answers 403 to a request whose Host is a name, not an
// address or localhost, and passes the others to h: the map page for the
// browsers that asked for it by address, not for a page that rebinds its
// own name.
func byAddressOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !namedByAddress(r) {
			writeError(w, http.StatusForbidden, "ask for this page by the address it listens on, or localhost")
			return
		}
		h.ServeHTTP(w, r)
	})
}
