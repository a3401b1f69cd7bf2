package main

import "errors"

var errEnough = errors.New("this node has as many peers as it takes; try others")

// inboundCap is how many peers a node takes by their announce before it
// refuses new ones: 2 x -k, so that early joiners do not become hubs. The
// peers it finds itself do not count. The seed (0) takes every node, up to -m.
func inboundCap(cfg config) int {
	if cfg.role == "node" {
		return 2 * max(cfg.enough, 1)
	}
	return 0
}
