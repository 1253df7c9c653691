//go:build tools

// Package stepca pins step-ca, the peer the benchmark compares varmenne with; none
// of its code is in this repository. Build: go build -o BIN github.com/smallstep/certificates/cmd/step-ca
package stepca

import _ "github.com/smallstep/certificates/cmd/step-ca"
