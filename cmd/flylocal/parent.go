package main

import (
	"log"
	"os"
	"time"
)

// parentPoll is how often flylocal looks at its parent pid: how late, at
// most, it starts stopping after its parent ended.
const parentPoll = 200 * time.Millisecond

// watchParent calls stop once the process that started flylocal has
// ended, and returns at once. In a script, `go run ./cmd/flylocal &` then
// `kill %1` sends SIGTERM to go run alone (a script has no job control),
// which ends go run and leaves flylocal to whoever adopts orphans: its
// parent pid changes, and that is what this notices. Polling getppid()
// rather than PR_SET_PDEATHSIG: the kernel sends that when the thread that
// forked us exits, which in a Go parent need not be the process ending.
//
// A parent pid of 1 at start means flylocal was started by init (or
// adopted already): there is nothing to watch.
func watchParent(stop func(), done <-chan struct{}) {
	parent := os.Getppid()
	if parent == 1 {
		return
	}
	go func() {
		t := time.NewTicker(parentPoll)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			if os.Getppid() != parent {
				log.Printf("flylocal: parent process %d ended: stopping every machine", parent)
				stop()
				return
			}
		}
	}()
}
