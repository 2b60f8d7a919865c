package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// Issue 25, item 10: /favicon.ico was a 404 on every load of the example,
// an error in every page's console. It is answered, empty, and cached.
func TestFaviconIsNoError(t *testing.T) {
	hs := httptest.NewServer(newMux("."))
	t.Cleanup(hs.Close)
	resp, body := get(t, hs.URL+"/favicon.ico")
	if resp.StatusCode != http.StatusNoContent || body != "" {
		t.Fatalf("GET /favicon.ico = %d %q, want 204 and no body", resp.StatusCode, body)
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age=") {
		t.Errorf("GET /favicon.ico: Cache-Control %q, want a max-age", cc)
	}
}

// The page, its script and the client are served beside the icon.
func TestGameFilesAreServed(t *testing.T) {
	hs := httptest.NewServer(newMux("."))
	t.Cleanup(hs.Close)
	tests := []struct {
		path, contentType, contains string
	}{
		{"/", "text/html", `"party-sockets-client": "./party-sockets.js"`},
		{"/game.js", "javascript", `from "party-sockets-client"`},
		{"/party-sockets.js", "text/javascript", "export class PartySocket"},
	}
	for _, tt := range tests {
		resp, body := get(t, hs.URL+tt.path)
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), tt.contentType) ||
			!strings.Contains(body, tt.contains) {
			t.Errorf(
				"GET %s = %d %s, want 200 %s with %q",
				tt.path,
				resp.StatusCode,
				resp.Header.Get("Content-Type"),
				tt.contentType,
				tt.contains,
			)
		}
	}
}
