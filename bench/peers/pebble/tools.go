//go:build tools

// Package pebble pins Pebble, the peer the benchmark compares varmenne with; none
// of its code is in this repository. Build: go build -o BIN github.com/letsencrypt/pebble/v2/cmd/pebble
package pebble

import _ "github.com/letsencrypt/pebble/v2/cmd/pebble"
