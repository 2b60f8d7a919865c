package main

import (
	"slices"
	"sync"
	"time"
)

// latencies collects end-to-end latencies, bounded in memory: past the cap
// it keeps every k-th sample.
type latencies struct {
	mu      sync.Mutex
	samples []time.Duration
	seen    int64
	max     time.Duration
}

const maxSamples = 4 << 20

func (l *latencies) add(batch []time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, d := range batch {
		l.seen++
		l.max = max(l.max, d)
		if len(l.samples) < maxSamples {
			l.samples = append(l.samples, d)
		} else if l.seen%int64(1+l.seen/maxSamples) == 0 {
			l.samples[l.seen%maxSamples] = d
		}
	}
}

type percentiles struct {
	P50, P90, P99, Max float64 // milliseconds
}

func (l *latencies) percentiles() percentiles {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.samples) == 0 {
		return percentiles{}
	}
	s := slices.Clone(l.samples)
	slices.Sort(s)
	at := func(q float64) float64 { return ms(s[min(len(s)-1, int(q*float64(len(s))))]) }
	return percentiles{P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: ms(l.max)}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
