package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/party-sockets/party-sockets/routing"
)

const (
	maxReplays     = 10
	maxReplayBody  = 1 << 20 // Fly replays bodies up to 1 MB
	defaultTimeout = 5 * time.Second
	firstHopWait   = 30 * time.Second // a machine that takes a request but never answers
)

// edge is one region's entry point: it stands in for anycast ("a player in
// Sydney" uses the syd edge).
type edge struct {
	c      *cluster
	region string
	port   int
	ln     net.Listener
}

func (e *edge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/.flylocal/") || r.URL.Path == "/.flylocal" {
		e.c.control(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxReplayBody+1))
	if err != nil || len(body) > maxReplayBody {
		http.Error(w, "request body too large to replay", http.StatusRequestEntityTooLarge)
		return
	}
	e.c.requests.Add(1)
	target, status := e.pick(r)
	if target == nil {
		http.Error(w, "no machine available", status)
		return
	}
	e.forward(w, r, body, target)
}

// pick chooses the first machine: fly-force-instance-id (waking it), then
// fly-prefer-instance-id, fly-force-region, fly-prefer-region, then the
// least-loaded started machine of this edge's region, leaving the region
// only when none is routable.
func (e *edge) pick(r *http.Request) (*machine, int) {
	c := e.c
	if id := r.Header.Get("Fly-Force-Instance-Id"); id != "" {
		m := c.machine(id)
		if m == nil {
			return nil, http.StatusNotFound
		}
		if err := c.wake(m); err != nil {
			return nil, http.StatusServiceUnavailable
		}
		return m, 0
	}
	if m := c.machine(r.Header.Get("Fly-Prefer-Instance-Id")); m != nil && m.routable() {
		return m, 0
	}
	if region := r.Header.Get("Fly-Force-Region"); region != "" {
		if m := c.leastLoaded(region, nil); m != nil {
			return m, 0
		}
		return nil, http.StatusServiceUnavailable
	}
	if m := c.leastLoaded(r.Header.Get("Fly-Prefer-Region"), nil); m != nil {
		return m, 0
	}
	if m := c.nearest(e.region, nil); m != nil {
		return m, 0
	}
	return nil, http.StatusServiceUnavailable
}

// hop is one delivery of the request to a machine.
type hop struct {
	target   *machine
	src      string // fly-replay-src to add, "" on the first delivery
	failed   string // fly-replay-failed to add on a fallback delivery
	timeout  time.Duration
	fallback *machine // where force_self sends it if target fails
	replay   routing.Replay
}

// forward delivers the request, following fly-replay answers, at most
// maxReplays times; a fly-replay response never reaches the client.
func (e *edge) forward(w http.ResponseWriter, r *http.Request, body []byte, first *machine) {
	reqID := newRequestID()
	h := hop{target: first, timeout: firstHopWait}
	tried := map[*machine]bool{}
	for replays := 0; ; {
		start := time.Now()
		conn, br, resp, err := e.send(r, body, h, reqID)
		if err != nil {
			tried[h.target] = true
			next, ok := e.onFailure(h, err, start, tried)
			if !ok {
				http.Error(w, "fly-local proxy: "+err.Error(), http.StatusBadGateway)
				return
			}
			h = next
			continue
		}
		if rv := resp.Header.Get("Fly-Replay"); rv != "" {
			resp.Body.Close()
			conn.Close()
			h.target.load.Add(-1)
			if h.failed != "" && !e.c.fallbackReplay {
				http.Error(w, "fly-local proxy: replay from a fallback delivery", http.StatusBadGateway)
				return
			}
			if replays++; replays > maxReplays {
				http.Error(w, "fly-local proxy: too many replays", http.StatusBadGateway)
				return
			}
			e.c.replays.Add(1)
			next, err := e.replayHop(h.target, rv)
			if err == nil {
				ev := replayEvent{Edge: e.region, Kind: replayKind(rv), From: h.target.ID, Path: r.URL.RequestURI()}
				if next.target != nil && next.failed == "" {
					ev.To = next.target.ID
				} else {
					ev.Kind, ev.To = "fallback", "back to "+next.target.ID+" (no machine)"
				}
				e.c.watch.replay(ev)
			}
			if err != nil {
				http.Error(w, "fly-local proxy: "+err.Error(), http.StatusBadGateway)
				return
			}
			h = next
			continue
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			e.splice(w, h.target, conn, br, resp)
			return
		}
		copyResponse(w, resp)
		resp.Body.Close()
		conn.Close()
		h.target.load.Add(-1)
		return
	}
}

// onFailure decides what follows a delivery that failed: the force_self
// fallback to the issuer, another machine for a first delivery, or nothing.
func (e *edge) onFailure(h hop, err error, start time.Time, tried map[*machine]bool) (hop, bool) {
	switch {
	case h.fallback != nil && h.replay.Fallback != "":
		reason := "unreachable"
		if errors.Is(err, errTimeout) {
			reason = "timeout"
		}
		e.c.watch.replay(replayEvent{Edge: e.region, Kind: "fallback", From: h.target.ID,
			To: "back to " + h.fallback.ID + " (" + reason + ")"})
		return e.fallbackHop(h, h.target.ID, h.target.Region, reason, time.Since(start)), true
	case h.src == "":
		// A first delivery: the proxy routes around a machine it cannot reach.
		if m := e.c.nearest(e.region, tried); m != nil {
			return hop{target: m, timeout: firstHopWait}, true
		}
	}
	return hop{}, false
}

// fallbackHop sends the request back to the issuer of a failed replay, with
// fly-replay-failed (and fly-replay-src when the setting says so).
func (e *edge) fallbackHop(h hop, targetID, targetRegion, reason string, elapsed time.Duration) hop {
	next := hop{target: h.fallback, timeout: firstHopWait}
	next.failed = fmt.Sprintf("instance=%s;app=%s;region=%s;replay_source=%s;reason=%s;elapsed_ms=%d",
		targetID, e.c.app, targetRegion, h.fallback.ID, reason, elapsed.Milliseconds())
	if e.c.fallbackSrc {
		next.src = h.src
	}
	return next
}

// replayHop turns a fly-replay value from issuer into the next delivery.
func (e *edge) replayHop(issuer *machine, value string) (hop, error) {
	rp, err := routing.ParseReplay(value)
	if err != nil {
		return hop{}, err
	}
	var target *machine
	switch {
	case rp.Instance != "":
		target = e.c.machine(rp.Instance)
	case rp.PreferInstance != "" && e.c.machine(rp.PreferInstance) != nil && e.c.machine(rp.PreferInstance).routable():
		target = e.c.machine(rp.PreferInstance)
	case len(rp.Regions) > 0:
		for _, region := range rp.Regions {
			if target = e.c.leastLoaded(region, skipIf(rp.Elsewhere, issuer)); target != nil {
				break
			}
		}
	case rp.Elsewhere || rp.PreferInstance != "":
		target = e.c.nearest(e.region, skipIf(rp.Elsewhere, issuer))
	}
	h := hop{
		timeout:  rp.Timeout,
		fallback: issuer,
		replay:   rp,
		src: fmt.Sprintf("instance=%s;region=%s;t=%d", issuer.ID, issuer.Region, time.Now().UnixMicro()) +
			stateField(rp.State),
	}
	if h.timeout <= 0 {
		h.timeout = defaultTimeout
	}
	if target == nil {
		if rp.Fallback == "" {
			return hop{}, errors.New("no machine for replay " + value)
		}
		return e.fallbackHop(h, rp.Instance, strings.Join(rp.Regions, ","), "no_machine", 0), nil
	}
	h.target = target
	return h, nil
}

func skipIf(cond bool, m *machine) map[*machine]bool {
	if !cond {
		return nil
	}
	return map[*machine]bool{m: true}
}

func stateField(s string) string {
	if s == "" {
		return ""
	}
	return ";state=" + s
}

var errTimeout = errors.New("timeout")

// send writes the request to h.target and reads the response head. The
// caller owns conn; target.load is raised until the caller lowers it.
func (e *edge) send(r *http.Request, body []byte, h hop, reqID string) (net.Conn, *bufio.Reader, *http.Response, error) {
	m := h.target
	if st := m.State(); st != stateStarted && !(st == stateStopping && h.src != "" && e.c.stoppingReplays.Load()) {
		return nil, nil, nil, fmt.Errorf("machine %s is %s", m.ID, st)
	}
	d := net.Dialer{Timeout: h.timeout}
	if e.c.proxyIP != nil {
		d.LocalAddr = &net.TCPAddr{IP: e.c.proxyIP}
	}
	conn, err := d.Dial("tcp", m.addr())
	if err != nil {
		return nil, nil, nil, err
	}
	m.routed.Add(1)
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host = "http", m.addr()
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	hdr := out.Header
	clientIP, _, _ := net.SplitHostPort(r.RemoteAddr)
	e.c.proxyHeader(hdr, "Fly-Client-IP", clientIP)
	hdr.Set("X-Forwarded-For", strings.TrimPrefix(r.Header.Get("X-Forwarded-For")+", "+clientIP, ", "))
	hdr.Set("X-Forwarded-Proto", "http")
	hdr.Set("X-Forwarded-Port", strconv.Itoa(e.port))
	hdr.Set("Fly-Forwarded-Port", strconv.Itoa(e.port))
	e.c.proxyHeader(hdr, "Fly-Region", e.region)
	hdr.Set("Fly-Request-Id", reqID)
	hdr.Set("Via", "1.1 fly.io")
	e.c.clientReplayHeaders(hdr)
	if h.src != "" {
		hdr.Add("Fly-Replay-Src", h.src) // after the client's, when kept
	}
	if h.failed != "" {
		hdr.Add("Fly-Replay-Failed", h.failed)
	}
	conn.SetDeadline(time.Now().Add(h.timeout))
	m.load.Add(1)
	fail := func(err error) (net.Conn, *bufio.Reader, *http.Response, error) {
		m.load.Add(-1)
		conn.Close()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			err = fmt.Errorf("%w: machine %s did not answer within %v", errTimeout, m.ID, h.timeout)
		}
		return nil, nil, nil, err
	}
	if err := out.Write(conn); err != nil {
		return fail(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, out)
	if err != nil {
		return fail(err)
	}
	conn.SetDeadline(time.Time{})
	return conn, br, resp, nil
}

func copyResponse(w http.ResponseWriter, resp *http.Response) {
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

func newRequestID() string {
	b := make([]byte, 10)
	rand.Read(b)
	return hex.EncodeToString(b)
}
