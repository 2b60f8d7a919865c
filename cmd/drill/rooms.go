package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"sync"
	"time"
)

// room is one game: a host and its players.
type room struct {
	code    string // set by the host's created
	home    string // the host's region
	members []*member
}

// roomSizes splits players into rooms of 3 to 10, about rooms of them.
func roomSizes(players, rooms int, r *rand.Rand) []int {
	rooms = max(1, min(rooms, players/3))
	sizes := make([]int, rooms)
	for i := range sizes {
		sizes[i] = players / rooms
		if i < players%rooms {
			sizes[i]++
		}
	}
	for range rooms * 2 { // spread them: a game of 3 beside a game of 10
		a, b := r.IntN(rooms), r.IntN(rooms)
		d := r.IntN(3)
		if a != b && sizes[a]+d <= 10 && sizes[b]-d >= 3 {
			sizes[a], sizes[b] = sizes[a]+d, sizes[b]-d
		}
	}
	return sizes
}

// population is every room and member of a game night.
type population struct {
	rooms   []*room
	members []*member
}

// newPopulation lays the rooms out over the regions: each room's host
// uses its home region's edge, and about a third of its players join by
// code through another region's edge. recoverShare of the rooms' members
// opt in to recovery. Every member has its own loopback address (srcNet:
// the first two bytes of 127.a.b.c).
func newPopulation(
	f *fleet,
	regions []string,
	sizes []int,
	recoverShare float64,
	tickets bool,
	r *rand.Rand,
) (*population, error) {
	p := &population{}
	srcA := byte(10 + r.IntN(200))
	n := 0
	for i, size := range sizes {
		rm := &room{home: regions[i%len(regions)]}
		for j := range size {
			region := rm.home
			if j > 0 && r.IntN(3) == 0 {
				region = regions[r.IntN(len(regions))]
			}
			edge, err := url.Parse(f.Edges[region])
			if err != nil {
				return nil, err
			}
			n++
			src := net.IPv4(127, srcA, byte(n/250), byte(n%250+1))
			pn, err := newPhoneNet(edge.Host, src)
			if err != nil {
				return nil, err
			}
			m := &member{room: rm, host: j == 0, recover: r.Float64() < recoverShare, edge: region, net: pn,
				recvs: map[int][]delivery{}}
			m.tickets = m.recover && tickets
			rm.members = append(rm.members, m)
			p.members = append(p.members, m)
		}
		p.rooms = append(p.rooms, rm)
	}
	return p, nil
}

// join brings every room up over spread: the host creates, then its
// players join by code. It fails only if no room could start.
func (p *population) join(ctx context.Context, spread time.Duration) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	gap := spread / time.Duration(max(1, len(p.rooms)))
	for i, rm := range p.rooms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * gap) // the game night's arrivals are spread, by design
			if err := rm.members[0].connect(ctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("room %d: create: %w", i, err))
				mu.Unlock()
				return
			}
			var jg sync.WaitGroup
			for _, m := range rm.members[1:] {
				jg.Add(1)
				go func() {
					defer jg.Done()
					if err := m.connect(ctx); err != nil {
						mu.Lock()
						errs = append(errs, fmt.Errorf("room %s: join: %w", rm.code, err))
						mu.Unlock()
					}
				}()
			}
			jg.Wait()
		}()
	}
	wg.Wait()
	if len(errs) == len(p.members) {
		return fmt.Errorf("no member could connect: %w", errs[0])
	}
	for _, err := range errs {
		fmt.Println("drill: at start:", err)
	}
	return nil
}

// live is every member that connected and is not closed.
func (p *population) live() []*member {
	var out []*member
	for _, m := range p.members {
		if m.c != nil && !m.hasEnded() {
			out = append(out, m)
		}
	}
	return out
}

func (p *population) closeAll() {
	var wg sync.WaitGroup
	for _, m := range p.members {
		m.leaving.Store(true)
		if m.c != nil {
			wg.Add(1)
			go func() { defer wg.Done(); m.c.Close(); <-m.readDone }()
		}
	}
	wg.Wait()
	for _, m := range p.members {
		m.net.close()
	}
}
