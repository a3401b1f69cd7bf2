package main

// Hubs and footholds: what stops early joiners from becoming hubs. When
// every node took every announce, the first to join were listed by
// everyone (in-degree 72 at -k 10). So a node takes at most
// inboundPerEnough x -k peers by their announce (409 past that: errEnough,
// unless a group of givesWayAt of them gives way, room.go;
// TestInboundCap); a candidate that is full is taken only as a foothold by
// a node that knows no peer, and let go once the node has found -k others
// (TestFootholdIsLetGo); and a node at -k tries a fresh candidate only
// while it has found at most -k peers itself (atLimit, node.go). In-degree
// at 1,000 nodes is at most 37, against the 4 x -k target (TestSimulation).

import "errors"

var errEnough = errors.New("this node has as many peers as it takes; try others")

// inboundCap is how many peers a node takes by their announce before it
// refuses new ones: inboundPerEnough x -k. The peers it finds itself do
// not count. The seed (0) has no such cap: -m and room.go bound it.
func inboundCap(cfg config) int {
	if cfg.role == "node" {
		return inboundPerEnough * max(cfg.enough, 1)
	}
	return 0
}
