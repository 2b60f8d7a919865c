package rooms

import (
	"strings"
	"testing"
)

func TestTemplate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want, err string
	}{
		{"plain", "https://x.example/c", "https://x.example/c", ""},
		{"both placeholders", "https://x.example/{room}/{instance}", "https://x.example/ROOM01/abc", ""},
		{"repeated", "https://{room}.x.example/{room}", "https://ROOM01.x.example/ROOM01", ""},
		{"upper scheme", "HTTPS://x.example", "HTTPS://x.example", ""},
		{"too large", "https://x.example/" + strings.Repeat("a", 495), "", "url too large"},
		{"space", "https://x.example/a b", "", "url must not contain spaces or control characters"},
		{"tab", "https://x.example/a\tb", "", "url must not contain spaces or control characters"},
		{"del", "https://x.example/a\x7f", "", "url must not contain spaces or control characters"},
		{"unknown name", "https://x.example/{code}", "", "Unknown url placeholder: {code}"},
		{"empty name", "https://x.example/{}", "", "Unknown url placeholder: {}"},
		{"unknown wins over stray", "https://x.example/{x}}", "", "Unknown url placeholder: {x}"},
		{"open brace", "https://x.example/{room", "", "url has an unmatched placeholder brace"},
		{"close brace", "https://x.example/room}", "", "url has an unmatched placeholder brace"},
		{"double open", "https://x.example/{{room}", "", "url has an unmatched placeholder brace"},
		{"relative", "/just/a/path", "", "url is not a valid URL"},
		{"no scheme", "x.example", "", "url is not a valid URL"},
		{"https without host", "https:///path", "", "url is not a valid URL"},
		{"http", "http://x.example", "", "url must be an https URL"},
		{"javascript", "javascript:alert(1)", "", "url must be an https URL"},
		{"bad escape", "https://x.example/%zz", "", "url is not a valid URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolve(tt.in)
			if msg := errString(err); msg != tt.err || got != tt.want {
				t.Errorf("resolve(%q) = %q, %q, want %q, %q", tt.in, got, msg, tt.want, tt.err)
			}
		})
	}
}

func resolve(s string) (string, error) {
	tpl, err := ParseTemplate(s)
	if err != nil {
		return "", err
	}
	return tpl.Resolve("ROOM01", "abc")
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestTemplateSizeBoundary(t *testing.T) {
	t.Parallel()
	ok := "https://x.example/" + strings.Repeat("a", MaxURLBytes-len("https://x.example/"))
	if _, err := ParseTemplate(ok); err != nil {
		t.Fatalf("512-byte url: %v", err)
	}
	// 511 bytes of which one character is two UTF-8 bytes: 512 bytes, fine; one more is too large.
	if _, err := ParseTemplate(ok[:len(ok)-2] + "é"); err != nil {
		t.Fatalf("512 bytes with é: %v", err)
	}
	if _, err := ParseTemplate(ok[:len(ok)-1] + "é"); err != ErrURLTooLarge {
		t.Fatalf("513 bytes: %v", err)
	}
}

func FuzzTemplate(f *testing.F) {
	for _, s := range []string{"https://x/{room}", "{", "}", "{a}{", "https://{instance}.x", "http://x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tpl, err := ParseTemplate(s)
		if err != nil {
			return
		}
		if len(s) > MaxURLBytes || strings.ContainsAny(string(tpl), " \t\r\n") {
			t.Fatalf("ParseTemplate(%q) accepted a bad template", s)
		}
		out, err := tpl.Resolve("ROOM01", "abc")
		if err == nil && (strings.ContainsAny(out, "{}") || !strings.HasPrefix(strings.ToLower(out), "https:")) {
			t.Fatalf("Resolve(%q) = %q", s, out)
		}
	})
}
