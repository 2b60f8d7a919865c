package main

import (
	"context"
	"sync"
	"time"

	"github.com/party-sockets/party-sockets/internal/procstat"
)

// sample is one second of the timeline.
type sample struct {
	At        time.Time        `json:"at"`
	Clients   map[string]int   `json:"clients"`   // WebSockets per region, as its machines count them
	Connected int              `json:"connected"` // members whose client is connected, as the drill sees them
	RSS       map[string]int64 `json:"rss"`       // bytes per machine id
}

// machineUse is one machine's CPU and memory over the drill, every
// process it ran summed (a deploy or a restart starts a new one).
type machineUse struct {
	ID         string  `json:"id"`
	Region     string  `json:"region"`
	CPUSeconds float64 `json:"cpu_seconds"`
	PeakRSS    int64   `json:"peak_rss"`
	cpuByPID   map[int]float64
}

// sampler reads the fleet every second until its context ends.
type sampler struct {
	f   *fleet
	pop *population

	mu       sync.Mutex // guards the fields below
	samples  []sample
	use      map[string]*machineUse
	lastSeen map[string]time.Time // room code → the last sample a machine listed it in
}

func (s *sampler) run(ctx context.Context) {
	s.mu.Lock()
	s.use, s.lastSeen = map[string]*machineUse{}, map[string]time.Time{}
	s.mu.Unlock()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		s.once(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *sampler) once(ctx context.Context) {
	ms, err := s.f.machines(ctx)
	if err != nil {
		return
	}
	sm := sample{At: time.Now(), Clients: map[string]int{}, RSS: map[string]int64{}}
	for _, m := range s.pop.members {
		if m.isConnected() {
			sm.Connected++
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range ms {
		for _, r := range m.RoomList {
			s.lastSeen[r.Code] = sm.At
		}
		sm.Clients[m.Region] += m.Clients
		u := s.use[m.ID]
		if u == nil {
			u = &machineUse{ID: m.ID, Region: m.Region, cpuByPID: map[int]float64{}}
			s.use[m.ID] = u
		}
		if m.PID == 0 {
			continue
		}
		st, err := procstat.Read(m.PID)
		if err != nil {
			continue
		}
		u.cpuByPID[m.PID] = st.CPUSeconds
		u.PeakRSS = max(u.PeakRSS, st.RSSBytes)
		sm.RSS[m.ID] = st.RSSBytes
	}
	s.samples = append(s.samples, sm)
}

// seen is the last moment each room was listed on a machine.
func (s *sampler) seen() map[string]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastSeen
}

// result is the timeline and every machine's use, CPU summed.
func (s *sampler) result() ([]sample, []machineUse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var use []machineUse
	for _, u := range s.use {
		u.CPUSeconds = 0
		for _, c := range u.cpuByPID {
			u.CPUSeconds += c
		}
		use = append(use, *u)
	}
	return append([]sample(nil), s.samples...), use
}
