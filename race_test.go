//go:build race

package main

// raceEnabled: the race detector slows the 1,000-node simulations tenfold;
// .ci/run runs them in a step of their own without it.
const raceEnabled = true
