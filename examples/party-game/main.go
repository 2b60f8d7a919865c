// Command party-game serves the buzzer quiz example and the browser client.
//
//	go run ./cmd/flylocal -regions fra,iad -port 8080 &
//	go run ./examples/party-game -addr 127.0.0.1:8000
//	open http://127.0.0.1:8000/?role=host&relay=http://127.0.0.1:8080
//	open http://127.0.0.1:8000/?relay=http://127.0.0.1:8081     (players, another region's edge)
package main

import (
	"flag"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8000", "listen address")
	flag.Parse()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Dir(file)
	if _, err := os.Stat(filepath.Join(dir, "index.html")); err != nil {
		dir = "examples/party-game" // a built binary run from the repo root
	}
	log.Printf("party game on http://%s/ (host: ?role=host&relay=<relay URL>)", *addr)
	log.Fatal(http.ListenAndServe(*addr, newMux(dir)))
}

// newMux serves the game's files from dir and the client from the
// repository's clients/js.
func newMux(dir string) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/", http.FileServer(http.Dir(dir)))
	mux.HandleFunc("/party-sockets.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		http.ServeFile(w, r, filepath.Join(dir, "..", "..", "clients", "js", "party-sockets.js"))
	})
	// Every page load asks for /favicon.ico: without an answer each one
	// logged a 404 in the console. No icon, and a day to remember that.
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=86400")
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}
