package main

// Every policy number of the program, each with what it bounds and where it
// is explained or tested. The code names them; it has no number of its own.

import "time"

// The flags' defaults: the blog's where it had the flag.
const (
	// seedPort is the seed's -p, the blog's.
	seedPort = 42020
	// nodePortMin and nodePortMax are the range a node's port is picked
	// from without -p, the blog's 55000 among them. It overlaps Linux's
	// ephemeral ports, so a taken port is skipped (TestListenRandomSkipsTakenPorts).
	nodePortMin, nodePortMax = 50000, 60000
	// listenTries is how many random ports a node tries before it gives up.
	listenTries = 50
	// defaultInterval is -u, the blog's update interval.
	defaultInterval = 60 * time.Second
	// defaultTimeout is -t, the limit of every outbound request.
	defaultTimeout = 3 * time.Second
	// defaultEnough is -k, the peers a node looks for (the blog's limit).
	defaultEnough = 10
	// defaultMax is -m, the most entries a table holds.
	defaultMax = 1000
	// defaultFails is -f, the failed checks in a row that remove a peer:
	// 1 drops a live node on one lost packet (README, "Why -f 2").
	defaultFails = 2
	// defaultHostMax is -hm, the most entries with one address.
	defaultHostMax = 8
)

// The rounds (refresh.go, node.go).
const (
	// maxInFlight bounds the calls a round runs at once, so that 10,000
	// peers never mean 10,000 open sockets (TestForEachRunsConcurrentlyWithABound).
	maxInFlight = 64
	// jitter is the share of -u by which a round's wait varies either way,
	// so that processes started together drift apart (TestWaitIsJitteredAndBacksOffWhileAlone).
	jitter = 0.1
	// aloneRetry is the first wait before another round of a node that
	// knows nobody; it doubles up to -u (TestAloneNodeRetriesSooner).
	aloneRetry = time.Second
	// timeoutShare is the most entries, 1 in timeoutShare (at least one),
	// that timeouts remove in one round: an overloaded seed times out on
	// live nodes (TestSweepBoundsRemovalsForTimeouts).
	timeoutShare = 100
	// minNoRoute is the fewest checks failed for want of a route that
	// show this host off its network, when they are most of the round's:
	// fewer may be as many dead peers on its link (TestOurFailuresRemoveNobody).
	minNoRoute = 3
	// leaveTimeout bounds the goodbyes a stopping node sends (TestProcessLeave).
	leaveTimeout = time.Second
	// logNames is the most addresses a round's log line names.
	logNames = 8
)

// Finding peers (node.go, hubs.go, walk.go).
const (
	// askPerMissing and askExtra size the samples a short node asks for:
	// askPerMissing per peer it lacks, plus askExtra, so that dead or full
	// candidates can be replaced from the same list.
	askPerMissing, askExtra = 2, 2
	// tries is how many times learn tries a list: each candidate not taken
	// is replaced once from its own list.
	tries = 2
	// walkSample is the sample each peer is asked for in the two-hop walk:
	// one entry of it, at random, is the hop (TestRefillsComeFromTwoHopsAway).
	// walkPeers is how many peers are asked, at random among those that
	// answered the round's check, so that the walk costs a few requests and
	// no timeout (TestRoundCostsOneTimeout).
	walkSample, walkPeers = 4, 4
	// freshOneIn: a node at -k tries a fresh candidate one round in
	// freshOneIn (TestNodeAtLimitTriesAFreshCandidate), half the time
	// (walkOneIn) from two hops away.
	freshOneIn, walkOneIn = 4, 2
	// inboundPerEnough is a node's cap on peers taken by their announce,
	// in units of -k: 2 x -k (TestInboundCap).
	inboundPerEnough = 2
	// firstBackoff and maxBackoff are the rounds between announces to a
	// peer that refused the last (403, 409): 2, 4, ... up to 16.
	firstBackoff, maxBackoff = 2, 16
)

// Address groups (groups.go, room.go).
const (
	// groupBits4 and groupBits6 are an address group: one allocation, an
	// IPv4 /16 or an IPv6 /32 (TestManyAddresses).
	groupBits4, groupBits6 = 16, 32
	// subnetBits4 and subnetBits6 are a subnet, inside a group: an IPv4 /24
	// or an IPv6 /64, such as one customer of a provider (quota.go).
	subnetBits4, subnetBits6 = 24, 64
	// smallSample: a sample of n from at most smallSample x n entries
	// takes groups in turn over all of them; from a larger table it draws
	// a group, then an entry, up to sampleTries x n times (TestSampleIsBalancedByGroup).
	smallSample, sampleTries = 4, 16
	// maxPerIP is the most peers a node's own picks take at one address
	// (loopback exempt): a host cannot be many of its peers by its ports.
	maxPerIP = 2
	// givesWayAt is the least a group must hold of a node's peers taken by
	// announce before it gives one up to a newcomer (TestAttackFillingInboundSlots).
	givesWayAt = 3
)

// Connect-back checks and their slots (connectback.go, quota.go, silence.go).
const (
	// maxVerifying bounds the connect-back checks that run at once: so
	// many that callers in 128 subnets, perSubnet each, hold only half of them.
	maxVerifying = 512
	// perSubnet and perGroup bound the checks that callers on another host
	// can have running or waiting: those of one subnet (an IPv4 /24, an
	// IPv6 /64), however many addresses it holds, and those of one group,
	// however many subnets. Past either, 429. So one subnet cannot take its
	// group's share from another subnet of the group (TestCheckSlotsAreFair,
	// TestFairVerification).
	perSubnet, perGroup = 4, 16
	// maxSeconds is the most -u and -t take: the waits and hold-offs made
	// of them, with jitter and slack, must not wrap.
	maxSeconds = 24 * time.Hour
	// incumbentShare: the incumbent a newcomer would replace is checked for
	// at most -t / incumbentShare, so that its check and the newcomer's end
	// before the newcomer's call gives up at its own -t (room.go).
	incumbentShare = 2
	// slotWaitShare: a check waits for a slot at most -t / slotWaitShare,
	// and is then refused with 503, leaving the caller time for the check.
	slotWaitShare = 4
	// maxFailedChecks bounds the addresses whose failed check is remembered
	// for -t (TestFairVerification).
	maxFailedChecks = 4096
	// maxCandidates bounds the candidates, not entries, remembered as having
	// answered not as a node (notnode.go) or refused us in this round.
	maxCandidates = 4096
	// checksToLeave is the failed checks in a row that prove a DELETE of a
	// node from another host: one lost packet proves nothing (TestLeaveIsProvenBySilence).
	checksToLeave = 2
	// agreeing is how many hosts must agree that our calls come from
	// another address before a node says it is unreachable (TestNAT).
	agreeing = 2
)

// Bytes and entries (api.go, peers.go, hostilelists.go, file.go).
const (
	// maxBody bounds request bodies: a Node is under 100 bytes (TestBodyTooLargeWithoutLength).
	maxBody = 1 << 10
	// maxReply bounds a peer's answer to GET / and POST /: a JSON object.
	maxReply = 1 << 10
	// maxListBody bounds a peer's answer to GET /nodes/: maxListEntries
	// nodes take about 610 kB. A longer answer is refused (TestListFromHostilePeer).
	maxListBody = 1 << 20
	// maxHeaderBytes bounds the headers of a peer's answer (Go's default
	// is 10 MB; BenchmarkHeaderBomb).
	maxHeaderBytes = 32 << 10
	// maxListEntries bounds the entries read from one list that a peer
	// sends: 10,000 nodes take about 610 kB (TestListParsingIsBounded).
	maxListEntries = 10_000
	// maxSample bounds the entries GET /nodes/?sample=N answers (TestSample).
	maxSample = 256
	// writeRest is how many times as long as the last write took the disk
	// rests before the next: writes take at most a tenth of the time,
	// whatever callers do, and changes meanwhile share one write
	// (TestWritesAreCoalesced).
	writeRest = 9
)

// The server (serve.go).
const (
	// readHeaderTimeout, readTimeout and idleTimeout bound what a caller
	// can hold of the server: its headers, its body, an idle connection
	// (a round's calls take none: a node's calls close their connections).
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	idleTimeout       = 5 * time.Second
	// maxHeader bounds the headers of a request, as maxBody its body; Go
	// reads 4 KiB more (serve.go).
	maxHeader = 1 << 10
	// maxConns, maxConnsPerIP, maxConnsPerSubnet and maxConnsPerGroup
	// bound the connections a process keeps open: in all, and but for
	// loopback's, from one address, from one subnet (an IPv4 /24, an IPv6
	// /64) and from one group (an IPv4 /16, an IPv6 /32), so that filling
	// them takes 4 groups, however many addresses each holds. The price:
	// one group's share is shared by all its callers, so an attacker with
	// 16 addresses in 4 subnets of a /16 leaves the rest of that /16 no
	// connection, as it would a cloud provider's block or a private
	// network. Past any, a new one is closed as it is accepted (quota.go,
	// TestOneHostCannotHoldEveryConnection,
	// TestOneGroupCannotHoldEveryConnection).
	maxConns, maxConnsPerIP, maxConnsPerSubnet, maxConnsPerGroup = 1024, 16, 64, 256
	// writeSlack is the time an answer may take beyond -t: POST / waits
	// for a connect-back check.
	writeSlack = 10 * time.Second
	// shutdownWait bounds the wait for requests in flight at a stop (TestProcessSignals).
	shutdownWait = 1500 * time.Millisecond
	// retryAfter is the Retry-After of a 503 for a check that found no slot.
	retryAfter = "1"
)

// The live map page (mapweb.go).
const (
	// maxMapNodes bounds the nodes of a map sent to a page: -m's default,
	// so that a crawl at a larger -m cannot make a page too slow to use.
	// Headless Chromium draws 1,000 in about 0.5 s and paints a hover within
	// two frames; at 2,000 a hover took 230 ms, at 5,000 0.9 s (DESIGN.md).
	// Past it the map says how many it left out; its counts are of the
	// whole crawl.
	maxMapNodes = 1000
	// maxMapWatchers bounds the pages watching the map at once: each one
	// holds a connection and a goroutine on the server.
	maxMapWatchers = 64
	// mapWriteTimeout bounds one write to a page, so that a page that stops
	// reading frees its goroutine instead of holding it for ever.
	mapWriteTimeout = 10 * time.Second
	// mapRetry is how soon a page that lost the server tries again: the
	// retry field of the event stream.
	mapRetry = time.Second
)

// maxDrawn is the most processes -role=map draws unless -draw asks for
// more: past it a flowchart is too dense to read.
const maxDrawn = 50
