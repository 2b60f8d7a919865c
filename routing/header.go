package routing

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// Replay is a parsed fly-replay response header.
type Replay struct {
	Instance       string
	Regions        []string // in order of preference
	PreferInstance string
	Elsewhere      bool
	State          string
	Timeout        time.Duration // 0 when absent
	Fallback       string        // "", "force_self" or "prefer_self"
}

var errEmptyReplay = errors.New("fly-replay: no target")

// ParseReplay reads `k=v;k=v` fields. Values may be quoted; region may be a
// comma-separated list. Unknown fields are ignored; a malformed known field
// is an error.
func ParseReplay(s string) (Replay, error) {
	var r Replay
	for _, f := range fields(s) {
		switch f.key {
		case "instance":
			r.Instance = f.val
		case "region":
			for _, reg := range strings.Split(f.val, ",") {
				if reg = strings.TrimSpace(reg); reg != "" {
					r.Regions = append(r.Regions, reg)
				}
			}
		case "prefer_instance":
			r.PreferInstance = f.val
		case "elsewhere":
			b, err := strconv.ParseBool(f.val)
			if err != nil {
				return Replay{}, errors.New("fly-replay: bad elsewhere " + strconv.Quote(f.val))
			}
			r.Elsewhere = b
		case "state":
			r.State = f.val
		case "timeout":
			d, err := time.ParseDuration(f.val)
			if err != nil || d < 0 {
				return Replay{}, errors.New("fly-replay: bad timeout " + strconv.Quote(f.val))
			}
			r.Timeout = d
		case "fallback":
			if f.val != "force_self" && f.val != "prefer_self" {
				return Replay{}, errors.New("fly-replay: bad fallback " + strconv.Quote(f.val))
			}
			r.Fallback = f.val
		}
	}
	if r.Instance == "" && len(r.Regions) == 0 && r.PreferInstance == "" && !r.Elsewhere {
		return Replay{}, errEmptyReplay
	}
	return r, nil
}

// ParseFields reads a fly-replay-src or fly-replay-failed value into a map.
// Field order is not guaranteed; the last of duplicate keys wins.
func ParseFields(s string) map[string]string {
	m := map[string]string{}
	for _, f := range fields(s) {
		m[f.key] = f.val
	}
	return m
}

type field struct{ key, val string }

// fields splits `k=v;k="v;w"` on semicolons outside quotes.
func fields(s string) []field {
	var out []field
	for len(s) > 0 {
		var part string
		end, inQuote := -1, false
		for i := 0; i < len(s); i++ {
			if s[i] == '"' {
				inQuote = !inQuote
			} else if s[i] == ';' && !inQuote {
				end = i
				break
			}
		}
		if end < 0 {
			part, s = s, ""
		} else {
			part, s = s[:end], s[end+1:]
		}
		k, v, _ := strings.Cut(part, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		v = strings.TrimSpace(v)
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		if k != "" {
			out = append(out, field{k, v})
		}
	}
	return out
}
