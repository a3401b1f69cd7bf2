//go:build linux

package main

// Attacks from another host, against real processes in the lab of hosts
// (see lab_test.go).

import (
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/matryer/is"
)

func TestUntrustedHosts(t *testing.T) {
	is := is.New(t)
	l := newLab(t, 11) // h0 the seed, h1 and h7 attackers, h2-h6 honest nodes, h8-h10 honest announcers
	seedHost, attacker := l.hosts[0], l.hosts[1]
	seed := seedHost.start("-role=seed", "-i", seedHost.v4, "-p", "0", "-u", "1", "-t", "1", "-d", "seed")
	timeout := time.Second // the seed's -t

	t.Run("one host cannot isolate newcomers", func(t *testing.T) {
		is := is.New(t)
		// One IP with 1,000 ports, each answering the connect-back check.
		fake := attacker.listen(1000, "ok", attacker.v4)
		codes := map[int]int{}
		var mu sync.Mutex
		forEachIndex(len(fake), 4, func(i int) { // 4 at a time: the seed's bound per source
			status, _ := attacker.do("POST", seed.addr, "/", nodeJSON(fake[i].IP, fake[i].Port))
			mu.Lock()
			codes[status]++
			mu.Unlock()
		})
		t.Logf("1,000 announces from one host: %v", codes)
		is.Equal(codes[200], 8)   // the seed takes -hm 8 of them
		is.Equal(codes[409], 992) // and refuses the rest

		var honest []*proc
		for _, h := range l.hosts[2:7] {
			honest = append(honest, h.start("-role=node", "-i", h.v4, "-p", "0", "-u", "1", "-t", "1", "-d", "node",
				"-di", seed.addr.IP, "-dp", strconv.Itoa(seed.addr.Port)))
		}
		isHonest := func(n Node) bool { return slices.ContainsFunc(honest, func(p *proc) bool { return p.addr == n }) }
		took := eventually(t, 15*time.Second, func() bool {
			listed := seedHost.list(seed.addr)
			for _, p := range honest {
				if !slices.Contains(listed, p.addr) || !slices.ContainsFunc(seedHost.list(p.addr), isHonest) {
					return false
				}
			}
			return true
		})
		t.Logf("5 honest nodes joining after the flood: all listed by the seed, each knowing an honest peer, %v after they started", took.Round(time.Millisecond))
	})

	t.Run("one host cannot stall joins", func(t *testing.T) {
		is := is.New(t)
		attacker := l.hosts[7]                             // not yet at the seed's cap per host
		hung := attacker.listen(1, "hang", attacker.v4)[0] // accepts, never answers
		var held sync.WaitGroup
		var firstAttackAnswer sync.Once
		var attackAnswered time.Time
		attackCodes := make([]int, 200)
		for i := range 200 {
			held.Add(1)
			go func() {
				defer held.Done()
				attackCodes[i], _ = attacker.do("POST", seed.addr, "/", nodeJSON(hung.IP, hung.Port))
				firstAttackAnswer.Do(func() { attackAnswered = time.Now() })
			}()
		}
		eventually(t, 10*time.Second, func() bool { return attacker.accepted(hung) > 0 }) // the seed is checking it, and stuck

		ok, slowest := 0, time.Duration(0)
		var mu sync.Mutex
		var honest sync.WaitGroup
		for _, h := range l.hosts[8:11] {
			nodes := h.listen(5, "ok", h.v4)
			honest.Add(1)
			go func() {
				defer honest.Done()
				for _, n := range nodes { // 5 announces from each of 3 hosts, one after another
					start := time.Now()
					status, _ := h.do("POST", seed.addr, "/", nodeJSON(n.IP, n.Port))
					took := time.Since(start)
					mu.Lock()
					if status == 200 && took < 2*timeout {
						ok++
					}
					slowest = max(slowest, took)
					mu.Unlock()
				}
			}()
		}
		honest.Wait()
		honestDone := time.Now()
		held.Wait()
		codes := map[int]int{}
		for _, c := range attackCodes {
			codes[c]++
		}
		t.Logf("while 200 announces of a never-answering address were held open (%v): %d of 15 honest announces succeeded within 2 x -t; the slowest took %v", codes, ok, slowest.Round(time.Millisecond))
		is.True(ok >= 14)                          // at least 14 of 15
		is.True(honestDone.Before(attackAnswered)) // all answered while the attacker's check still hung: none waited behind it
		is.Equal(codes[200], 0)                    // the hung address was never added
	})
}
