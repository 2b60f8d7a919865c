package main

import (
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/url"
)

// What an edge does with the client's own copies of the headers Fly's
// proxy sets is undocumented (docs/limits.md "What we trust of Fly, checked"):
// the operator's trust check (tests/live/trustcheck_test.go) finds out on
// a real app. flylocal can behave either way, chosen by a flag and
// switched at run time:
//
//	client_proxy_headers   replace: the edge's Fly-Region and Fly-Client-IP replace the client's (default)
//	                       append:  the client's stay, first, and the edge's follow as further values
//	client_replay_headers  strip:   the client's fly-replay-src and fly-replay-failed are removed (default)
//	                       keep:    they reach the machine, before any the edge adds on a replay
//
// The defaults are what Fly's docs describe: the proxy sets Fly-Region to
// the edge that took the connection, and fly-replay-src is the proxy's own.
const (
	proxyHeadersReplace = "replace"
	proxyHeadersAppend  = "append"
	replayHeadersStrip  = "strip"
	replayHeadersKeep   = "keep"
)

// parseMode reads a mode setting's value: the first of two words is
// false, the second true.
func parseMode(name, v, off, on string) (bool, error) {
	switch v {
	case off:
		return false, nil
	case on:
		return true, nil
	}
	return false, fmt.Errorf("%s %.40q: want %s or %s", name, v, off, on)
}

// setClientHeaderModes applies the flags -client-proxy-headers and
// -client-replay-headers.
func (c *cluster) setClientHeaderModes(proxy, replay string) error {
	appendHdrs, err := parseMode("-client-proxy-headers", proxy, proxyHeadersReplace, proxyHeadersAppend)
	if err != nil {
		return err
	}
	keepHdrs, err := parseMode("-client-replay-headers", replay, replayHeadersStrip, replayHeadersKeep)
	if err != nil {
		return err
	}
	c.appendProxyHeaders.Store(appendHdrs)
	c.keepReplayHeaders.Store(keepHdrs)
	return nil
}

// settings is what GET /.flylocal/state and POST /.flylocal/settings show.
func (c *cluster) settings() map[string]any {
	proxy, replay := proxyHeadersReplace, replayHeadersStrip
	if c.appendProxyHeaders.Load() {
		proxy = proxyHeadersAppend
	}
	if c.keepReplayHeaders.Load() {
		replay = replayHeadersKeep
	}
	return map[string]any{"stopping_replays": c.stoppingReplays.Load(), "stop_close_frames": c.stopCloseFrames,
		"fallback_src": c.fallbackSrc, "fallback_replay": c.fallbackReplay,
		"client_proxy_headers": proxy, "client_replay_headers": replay}
}

// serveSettings is POST /.flylocal/settings?stopping_replays=<0|1>&
// client_proxy_headers=<replace|append>&client_replay_headers=<strip|keep>:
// every value is checked before any is applied.
func (c *cluster) serveSettings(w http.ResponseWriter, q url.Values) {
	type change struct {
		set func(bool)
		on  bool
	}
	var changes []change
	for _, s := range []struct {
		name, off, on string
		set           func(bool)
	}{
		{"stopping_replays", "0", "1", c.stoppingReplays.Store},
		{"client_proxy_headers", proxyHeadersReplace, proxyHeadersAppend, c.appendProxyHeaders.Store},
		{"client_replay_headers", replayHeadersStrip, replayHeadersKeep, c.keepReplayHeaders.Store},
	} {
		if !q.Has(s.name) {
			continue
		}
		on, err := parseMode(s.name, q.Get(s.name), s.off, s.on)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		changes = append(changes, change{s.set, on})
	}
	for _, ch := range changes {
		ch.set(ch.on)
	}
	st := c.settings()
	log.Printf("flylocal: settings %v", st)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(st)
}

// proxyHeader gives the request the edge's value of a header Fly's proxy
// sets, replacing or following the client's own (client_proxy_headers).
func (c *cluster) proxyHeader(h http.Header, name, value string) {
	if c.appendProxyHeaders.Load() {
		h.Add(name, value)
		return
	}
	h.Set(name, value)
}

// clientReplayHeaders removes the client's fly-replay-src and
// fly-replay-failed unless client_replay_headers is keep.
func (c *cluster) clientReplayHeaders(h http.Header) {
	if !c.keepReplayHeaders.Load() {
		h.Del("Fly-Replay-Src")
		h.Del("Fly-Replay-Failed")
	}
}
