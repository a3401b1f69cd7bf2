package main

// Connect-back checks: what stops a caller from filling a table with
// addresses where no node runs, or from making us call anyone it likes.
// The blog added whatever it was sent. Here an announced node is added only
// once it answers GET / itself (quota.verify), and a caller on another
// host may announce only the address it calls from (mayAnnounce), so that
// no host can make this process call a third party or its own loopback
// (TestAnnounceOnlyYourself, TestMultiHost). Announces of one address share
// one check, and a failed check is given again for -t: 200 announces of an
// address that never answers cost one check (TestFairVerification). A
// check runs within its caller's share of checks (quota.go).

import (
	"errors"
	"fmt"
	"net/netip"
)

// mayAnnounce says why a caller at src may not announce n, or nil if it
// may: the operator may announce anyone; a caller on another host only
// itself, and never a link-local address.
func mayAnnounce(src netip.Addr, operator bool, n Node) error {
	switch {
	case operator:
		return nil
	case n.IP != src:
		return fmt.Errorf("announce only yourself: this call came from %s", src)
	case n.scoped():
		return errors.New("link-local addresses are not taken from other hosts")
	}
	return nil
}
