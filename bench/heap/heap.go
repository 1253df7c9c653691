// Package heap samples the Go heap while a benchmark runs: the largest live heap
// seen, for the memory figures of the CRL benchmarks and of make bench. It holds no
// benchmark logic of its own.
package heap

import (
	"runtime"
	"time"
)

// Peak samples the live heap (runtime.MemStats.HeapAlloc) every interval until
// Stop, and keeps the largest value.
type Peak struct {
	done chan struct{}
	top  chan uint64
}

// Start begins sampling every interval.
func Start(interval time.Duration) *Peak {
	p := &Peak{done: make(chan struct{}), top: make(chan uint64)}
	go func() {
		var m runtime.MemStats
		var top uint64
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&m)
			top = max(top, m.HeapAlloc)
			select {
			case <-p.done:
				p.top <- top
				return
			case <-t.C:
			}
		}
	}()
	return p
}

// Stop ends the sampling and returns the largest live heap seen, in bytes.
func (p *Peak) Stop() uint64 {
	close(p.done)
	return <-p.top
}
