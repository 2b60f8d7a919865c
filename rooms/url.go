package rooms

import (
	"net/url"
	"strings"

	"github.com/party-sockets/party-sockets/internal/wire"
)

// MaxURLBytes bounds a controller url template.
const MaxURLBytes = 512

// Errors for controller url templates, exactly as the old relay spells
// them (docs/protocol.md).
var (
	ErrURLType     = wire.Define("url must be a string")
	ErrURLTooLarge = wire.Define("url too large")
	ErrURLChars    = wire.Define("url must not contain spaces or control characters")
	ErrURLBrace    = wire.Define("url has an unmatched placeholder brace")
	ErrURLInvalid  = wire.Define("url is not a valid URL")
	ErrURLNotHTTPS = wire.Define("url must be an https URL")
	// ErrURLPlaceholder is sent with the unknown {name}, as
	// "Unknown url placeholder: {name}".
	ErrURLPlaceholder = wire.Define("Unknown url placeholder")
)

// Template is a checked controller url template with {room} and {instance}
// placeholders.
type Template string

// ParseTemplate checks a template in the old relay's order: size, characters,
// placeholder names, stray braces. Whether the filled url is an absolute
// https URL is checked by Resolve, once the code is known.
func ParseTemplate(s string) (Template, error) {
	if len(s) > MaxURLBytes {
		return "", ErrURLTooLarge
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return "", ErrURLChars
		}
	}
	// Every {name} with no brace inside must be a known placeholder.
	rest := s
	for {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			break
		}
		end := strings.IndexAny(rest[open+1:], "{}")
		if end < 0 {
			break
		}
		end += open + 1
		if rest[end] == '{' {
			rest = rest[end:]
			continue
		}
		if name := rest[open+1 : end]; name != "room" && name != "instance" {
			return "", ErrURLPlaceholder.With(rest[open : end+1])
		}
		rest = rest[end+1:]
	}
	stripped := strings.NewReplacer("{room}", "", "{instance}", "").Replace(s)
	if strings.ContainsAny(stripped, "{}") {
		return "", ErrURLBrace
	}
	return Template(s), nil
}

// Resolve fills the placeholders, percent-encoded, and checks the result is
// an absolute https URL.
func (t Template) Resolve(room, instance string) (string, error) {
	s := strings.NewReplacer("{room}", url.PathEscape(room), "{instance}", url.PathEscape(instance)).Replace(string(t))
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return "", ErrURLInvalid
	}
	if !strings.EqualFold(u.Scheme, "https") {
		return "", ErrURLNotHTTPS
	}
	if u.Host == "" {
		return "", ErrURLInvalid
	}
	return s, nil
}
