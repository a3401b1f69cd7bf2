package main

import (
	"bytes"
	"encoding/json"
	"errors"
)

// notANode reports whether err is an answer that no node gives.
func notANode(err error) bool {
	var pe *peerError
	return errors.As(err, &pe) && pe.notNode
}

// isObject reports whether data is one JSON object: how a node answers
// GET / and POST /, the blog's included ({}), and what a web server that
// answers 200 to everything does not send.
func isObject(data []byte) bool {
	data = bytes.TrimSpace(data)
	return len(data) > 0 && data[0] == '{' && json.Valid(data)
}
