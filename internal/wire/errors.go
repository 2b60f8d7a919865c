package wire

import (
	"errors"
	"slices"
	"sync"
)

// Error is an error a client can see: in an error frame
// ({"type":"error","message":...}) or an HTTP body ({"error":...}). Its
// text is sent exactly as written (docs/protocol.md and the
// tests compare it byte for byte), and metrics count it under its fixed
// Label, so every such error is labelled without a list to keep.
type Error struct {
	label  string
	detail string // sent after the label as ": detail"; With sets it
	base   *Error // the defined error a detailed one is; nil for a defined one
}

// defined is every label Define has made, for metrics to start each
// series at zero. Define runs in package variables' initialisers, so it
// is complete before main starts.
var defined struct {
	mu     sync.Mutex // guards labels
	labels []string
}

// Define makes an error a client can see, with its fixed text. Call it
// only in a package-level variable: every call adds a metric label, and a
// label defined twice panics (two errors would be counted as one).
func Define(label string) *Error {
	defined.mu.Lock()
	defer defined.mu.Unlock()
	if slices.Contains(defined.labels, label) {
		panic("wire: error " + label + " defined twice")
	}
	defined.labels = append(defined.labels, label)
	return &Error{label: label}
}

// With is e with a detail that varies (the name of an unknown url
// placeholder): its text is "label: detail", its label still e's, and
// errors.Is matches it to e.
func (e *Error) With(detail string) *Error {
	return &Error{label: e.label, detail: detail, base: e.defined()}
}

func (e *Error) defined() *Error {
	if e.base != nil {
		return e.base
	}
	return e
}

// Error is the text the client sees.
func (e *Error) Error() string {
	if e.detail == "" {
		return e.label
	}
	return e.label + ": " + e.detail
}

// Is matches a detailed error to the defined one it details.
func (e *Error) Is(target error) bool { return e.base != nil && target == error(e.base) }

// Labels is every defined error's label, sorted.
func Labels() []string {
	defined.mu.Lock()
	defer defined.mu.Unlock()
	return slices.Sorted(slices.Values(defined.labels))
}

// Other is the label of an error that is not a wire Error.
const Other = "other"

// Label is err's metric label: its wire Error's label (err may wrap one),
// else Other.
func Label(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.label
	}
	return Other
}

// Errors of the envelope, exactly as the old relay spells them (README
// "The protocol in brief").
var (
	ErrInvalidJSON = Define("Invalid JSON")
	ErrUnknownType = Define("Unknown message type")
	// ErrNotObject is the server API's and the internal calls' answer to
	// a body that is JSON but not an object (a client's message gets
	// ErrUnknownType, as the relay we replace answered).
	ErrNotObject = Define("Body must be a JSON object")
	// ErrInvalidUTF8 refuses a frame that a browser would fail the whole
	// connection on if we relayed it (our own limit, in the old relay's shape).
	ErrInvalidUTF8 = Define("Invalid UTF-8")
	// ErrTooComplex bounds decode work: at most MaxKeys top-level keys,
	// values nested at most MaxDepth deep.
	ErrTooComplex = Define("Message too complex")
)
