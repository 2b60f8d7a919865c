package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/party-sockets/party-sockets/tokens"
)

// A setting is one row of the config table: an environment variable, the
// field its value goes to, its default, and how a value is read and
// bounded. The kinds below (count, rate, duration, ...) make the rows.
type setting struct {
	env   string                // the variable
	alt   string                // read when env is empty: Fly's own name for it
	set   func(v string) error  // stores v, or says what was wanted and stores nothing
	show  func(v string) string // a bad value as its error line prints it
	def   any                   // the default, of the field's type
	get   func() any            // the field's value
	reset func()                // stores the default
	zero  func()                // stores the field's zero value (tests: the package's own default)
	ends  [2]string             // values at the bounds, both taken (numbers and durations)
	past  []string              // values just past the bounds, refused
}

// field makes a row from a parser of the field's type: the kinds' common part.
func field[T any](env string, dst *T, def T, parse func(string) (T, error)) setting {
	return setting{
		env: env, def: def,
		set: func(v string) error {
			x, err := parse(v)
			if err == nil {
				*dst = x
			}
			return err
		},
		show:  func(v string) string { return v },
		get:   func() any { return *dst },
		reset: func() { *dst = def },
		zero:  func() { var z T; *dst = z },
	}
}

// or names Fly's variable for the same value, read when env is empty.
func (s setting) or(alt string) setting { s.alt = alt; return s }

// wanting replaces what a bad value is told it should be.
func (s setting) wanting(want string) setting {
	set := s.set
	s.set = func(v string) error {
		if set(v) != nil {
			return errors.New(want)
		}
		return nil
	}
	return s
}

// count is a whole number from lo to hi.
func count(env string, dst *int, def, lo, hi int) setting {
	want := fmt.Errorf("want a whole number from %d to %d", lo, hi)
	s := field(env, dst, def, func(v string) (int, error) {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return 0, want
		}
		return n, nil
	})
	s.ends, s.past = [2]string{strconv.Itoa(lo), strconv.Itoa(hi)}, []string{strconv.Itoa(lo - 1), strconv.Itoa(hi + 1)}
	return s
}

// byteCount is a number of bytes from lo to hi.
func byteCount(env string, dst *int64, def, lo, hi int64) setting {
	want := fmt.Errorf("want a byte count from %d to %d", lo, hi)
	s := field(env, dst, def, func(v string) (int64, error) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < lo || n > hi {
			return 0, want
		}
		return n, nil
	})
	i := func(n int64) string { return strconv.FormatInt(n, 10) }
	s.ends, s.past = [2]string{i(lo), i(hi)}, []string{i(lo - 1), i(hi + 1)}
	return s
}

// rate is so many of unit, at most hi; 0 turns the limit off.
func rate(env string, dst *float64, def, hi float64, unit string) setting {
	want := errors.New("want " + unit + ", 0 to disable")
	s := field(env, dst, def, func(v string) (float64, error) {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f >= 0 && f <= hi) { // NaN is neither
			return 0, want
		}
		return f, nil
	})
	g := func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
	s.ends, s.past = [2]string{"0", g(hi)}, []string{"-1", g(hi * 1.5), "NaN"}
	return s
}

// duration is a Go duration of at least lo, which is 0 or more.
func duration(env string, dst *time.Duration, def, lo time.Duration) setting {
	want := errors.New("want a positive Go duration, e.g. 10s")
	if lo == 0 {
		want = errors.New("want a non-negative Go duration, e.g. 2m or 30s")
	}
	s := field(env, dst, def, func(v string) (time.Duration, error) {
		d, err := time.ParseDuration(v)
		if err != nil || d < lo {
			return 0, want
		}
		return d, nil
	})
	s.ends, s.past = [2]string{lo.String(), "1000h"}, []string{(lo - 1).String(), "soon"}
	return s
}

// onOff is a switch: on or off, nothing else (ON is not on).
func onOff(env string, dst *bool, def bool) setting {
	return field(env, dst, def, func(v string) (bool, error) {
		switch v {
		case "on":
			return true, nil
		case "off":
			return false, nil
		}
		return false, errors.New("want on or off")
	})
}

// text is any string of at most max bytes (0: any length). A bad value's
// line shows its first 64 bytes.
func text(env string, dst *string, max int) setting {
	s := field(env, dst, "", func(v string) (string, error) {
		if max > 0 && len(v) > max {
			return "", fmt.Errorf("want at most %d bytes", max)
		}
		return v, nil
	})
	s.show = func(v string) string {
		if len(v) > 64 {
			return v[:64] + "…"
		}
		return v
	}
	return s
}

// hidden is what a bad secret's line shows of it.
const hidden = "(hidden)"

// secret is a string of at least min bytes whose value is never shown.
func secret(env string, dst *string, min int) setting {
	s := field(env, dst, "", func(v string) (string, error) {
		if len(v) < min {
			return "", fmt.Errorf("want at least %d bytes", min)
		}
		return v, nil
	})
	s.show = func(string) string { return hidden }
	return s
}

// absURL is an absolute URL.
func absURL(env string, dst *string) setting {
	return field(env, dst, "", func(v string) (string, error) {
		if u, err := url.Parse(v); err != nil || u.Scheme == "" || u.Host == "" {
			return "", errors.New("want an absolute URL")
		}
		return v, nil
	})
}

// MaxHookURLBytes bounds WEBHOOK_URL.
const MaxHookURLBytes = 2048

// hookURL is an absolute http(s) URL that may carry credentials: a bad
// one's line shows only its scheme and host (redactURL).
func hookURL(env string, dst *string) setting {
	s := field(env, dst, "", func(v string) (string, error) {
		if len(v) > MaxHookURLBytes {
			return "", errors.New("want an absolute http(s) URL")
		}
		if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", errors.New("want an absolute http(s) URL")
		}
		return v, nil
	})
	s.show = redactURL
	return s
}

// hostPort is an address to dial or listen on.
func hostPort(env string, dst *string, example string) setting {
	return field(env, dst, "", func(v string) (string, error) {
		if _, _, err := net.SplitHostPort(v); err != nil {
			return "", errors.New("want host:port, e.g. " + example)
		}
		return v, nil
	})
}

// list is comma-separated values, blanks around them and empty ones dropped.
func list(env string, dst *[]string) setting {
	return field(env, dst, nil, func(v string) ([]string, error) {
		var out []string
		for _, o := range strings.Split(v, ",") {
			if o = strings.TrimSpace(o); o != "" {
				out = append(out, o)
			}
		}
		return out, nil
	})
}

// maxPrefixes bounds a list of address ranges (TRUSTED_PROXIES).
const maxPrefixes = 64

// prefixes is comma-separated address ranges in CIDR notation, at most
// maxPrefixes; an address alone is its own range (/32, /128). An
// IPv4-mapped IPv6 range is taken as the IPv4 range it maps, since socket
// addresses are compared unmapped.
func prefixes(env string, dst *[]netip.Prefix) setting {
	want := fmt.Errorf("want at most %d comma-separated address ranges, e.g. 172.16.0.0/12,fdaa::/16", maxPrefixes)
	s := field(env, dst, nil, func(v string) ([]netip.Prefix, error) {
		var out []netip.Prefix
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f == "" {
				continue
			}
			p, ok := parsePrefix(f)
			if !ok || len(out) == maxPrefixes {
				return nil, want
			}
			out = append(out, p)
		}
		return out, nil
	})
	many := strings.TrimSuffix(strings.Repeat("10.0.0.0/8,", maxPrefixes), ",")
	s.ends, s.past = [2]string{"::/0", many}, []string{"10.0.0.0/33", "fdaa::/129", "fly", many + ",10.0.0.0/8"}
	return s
}

// parsePrefix is a CIDR range, or an address alone, masked and unmapped.
func parsePrefix(v string) (netip.Prefix, bool) {
	p, err := netip.ParsePrefix(v)
	if err != nil {
		a, aerr := netip.ParseAddr(v)
		if aerr != nil || a.Zone() != "" {
			return netip.Prefix{}, false
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, false
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), true
}

// logLevel is slog's level names.
func logLevel(env string, dst *slog.Level) setting {
	return field(env, dst, slog.LevelInfo, func(v string) (slog.Level, error) {
		var l slog.Level
		if err := l.UnmarshalText([]byte(v)); err != nil {
			return 0, errors.New("want debug, info, warn or error")
		}
		return l, nil
	})
}

// publicKey is a PEM Ed25519 public key, kept as its text; a bad one's
// line does not print it.
func publicKey(env string, dst *string) setting {
	s := field(env, dst, "", func(v string) (string, error) {
		if _, err := tokens.ParsePublicKey(v); err != nil {
			return "", errors.New("want a PEM Ed25519 public key: " + err.Error())
		}
		return v, nil
	})
	s.show = func(string) string { return "(PEM)" }
	return s
}

// report gathers bad values, one line each. A row stores nothing from a
// bad value, so a check that reads another row's field never reports the
// same variable again.
type report struct{ errs []error }

func (r *report) bad(name, shown, why string) {
	r.errs = append(r.errs, fmt.Errorf("%s=%q: %s", name, shown, why))
}

func (r *report) err() error { return errors.Join(r.errs...) }

// redactURL is a URL as an error may print it: only its scheme and host
// are shown. Its user and password, query and fragment are replaced, and
// so is its path, which is the secret of many webhook URLs (a Slack or
// Discord hook's); a value that does not parse shows only its length.
func redactURL(v string) string {
	u, err := url.Parse(v)
	if err != nil || u.Opaque != "" || len(u.Host) > 253 {
		return fmt.Sprintf("(%d bytes, not shown)", len(v))
	}
	shown := url.URL{Scheme: u.Scheme, Host: u.Host}
	if u.User != nil {
		shown.User = url.User("redacted")
	}
	if u.Path != "" && u.Path != "/" {
		shown.Path = "/redacted"
	}
	if u.RawQuery != "" {
		shown.RawQuery = "redacted"
	}
	if u.Fragment != "" {
		shown.Fragment = "redacted"
	}
	return shown.String()
}
