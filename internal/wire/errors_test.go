package wire

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

var errTestPlaceholder = Define("Test placeholder")

// A defined error's text is its label; a detailed one's is "label:
// detail", with the same label, and errors.Is matches it (and anything
// wrapping it) to the defined one, never to another.
func TestErrorText(t *testing.T) {
	t.Parallel()
	detailed := errTestPlaceholder.With("{code}")
	wrapped := fmt.Errorf("while creating: %w", detailed)
	tests := []struct {
		name        string
		err         error
		text, label string
		is          bool // errors.Is(err, errTestPlaceholder)
	}{
		{"defined", errTestPlaceholder, "Test placeholder", "Test placeholder", true},
		{"detailed", detailed, "Test placeholder: {code}", "Test placeholder", true},
		{"wrapped", wrapped, "while creating: Test placeholder: {code}", "Test placeholder", true},
		{"detail of a detail", detailed.With("x"), "Test placeholder: x", "Test placeholder", true},
		{"another", ErrInvalidJSON, "Invalid JSON", "Invalid JSON", false},
		{"not a wire error", errors.New("Invalid JSON"), "Invalid JSON", Other, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.text {
				t.Errorf("Error() = %q, want %q", got, tt.text)
			}
			if got := Label(tt.err); got != tt.label {
				t.Errorf("Label(%v) = %q, want %q", tt.err, got, tt.label)
			}
			if got := errors.Is(tt.err, errTestPlaceholder); got != tt.is {
				t.Errorf("errors.Is(%v, errTestPlaceholder) = %v, want %v", tt.err, got, tt.is)
			}
		})
	}
	if errors.Is(errTestPlaceholder, detailed) {
		t.Error("a defined error Is one of its detailed copies: they must compare one way only")
	}
}

// Labels lists every defined error once, and a label defined twice panics
// rather than have two errors counted as one.
func TestLabels(t *testing.T) {
	t.Parallel()
	labels := Labels()
	for _, want := range []string{"Invalid JSON", "Unknown message type", "Message too complex", "Test placeholder"} {
		if !slices.Contains(labels, want) {
			t.Errorf("Labels() lacks %q: %q", want, labels)
		}
	}
	if !slices.IsSorted(labels) || len(slices.Compact(slices.Clone(labels))) != len(labels) {
		t.Errorf("Labels() = %q: want sorted, each once", labels)
	}
	defer func() {
		if recover() == nil {
			t.Error("Define of an existing label did not panic")
		}
		if got := Labels(); len(got) != len(labels) {
			t.Errorf("a refused Define changed Labels: %d labels, want %d", len(got), len(labels))
		}
	}()
	Define("Invalid JSON")
}
