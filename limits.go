package main

import "time"

const (
	// maxListBody bounds a peer's answer to GET /nodes/: maxListEntries
	// nodes take about 610 kB. A longer answer is refused.
	maxListBody = 1 << 20
	// maxHeaderBytes bounds the headers of a peer's answer (Go's default is 10 MB).
	maxHeaderBytes = 32 << 10
)

const (
	// leaveTimeout bounds the goodbyes a stopping node sends.
	leaveTimeout = time.Second
	// maxInFlight bounds the checks a round runs at once, so that 10,000 peers
	// never mean 10,000 open sockets.
	maxInFlight = 64
)

const (
	// maxBody bounds request bodies: a Node is under 100 bytes.
	maxBody = 1 << 10
	// maxSample bounds the entries GET /nodes/?sample=N answers.
	maxSample = 256
)

// maxCheckers bounds the processes CheckedBy remembers between two rounds.
const maxCheckers = 64

// writeGap is the least time between two writes of the file: at most 4 a
// second, whatever callers do (a 1,000-entry file is 62 kB: 250 kB/s).
const writeGap = 250 * time.Millisecond

// maxListEntries bounds the entries read from one list that a peer sends:
// 10,000 nodes take about 610 kB.
const maxListEntries = 10_000

const (
	// maxVerifying bounds the connect-back checks that announces run at
	// once: so many that callers in 64 different allocations, 4 checks
	// each, hold only half of them.
	maxVerifying = 512
	// perGroup bounds the checks that callers of one group on another host
	// (an IPv4 /16, an IPv6 /32: see groupOf) can have running or waiting,
	// so that however many addresses and subnets it holds, it takes no
	// more than 4 slots.
	perGroup = 4
	// maxFailed bounds the addresses whose failed check is remembered.
	maxFailed = 4096
)

// seedPort is the seed's default port, the blog's.
const seedPort = 42020

// maxDrawn is the most processes drawn as a graph unless -draw asks for more:
// past it a flowchart is too dense to read.
const maxDrawn = 50
