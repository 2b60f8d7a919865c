package testutil

import (
	"bufio"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// echo is a line echo server on loopback.
func echo(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					c.Write(append(sc.Bytes(), '\n'))
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(c net.Conn, line string, d time.Duration) (string, error) {
	c.SetDeadline(time.Now().Add(d))
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}

// A black hole forwards nothing and ends nothing while it lasts (a read
// times out: no FIN, no RST); afterwards the connection it swallowed is
// reset, and one made during it goes through.
func TestNetCutBlackhole(t *testing.T) {
	t.Parallel()
	n := StartNetCut(t, echo(t))
	old, err := net.Dial("tcp", n.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if got, err := roundTrip(old, "hi", 5*time.Second); err != nil || got != "hi\n" {
		t.Fatalf("before: %q %v", got, err)
	}
	n.Blackhole(time.Minute)
	if got, err := roundTrip(old, "lost", 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("in the black hole: %q %v, want a read that times out", got, err)
	}
	during, err := net.Dial("tcp", n.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer during.Close()
	answer := make(chan string, 1)
	go func() { got, _ := roundTrip(during, "later", 10*time.Second); answer <- got }()
	select {
	case got := <-answer:
		t.Fatalf("a new connection went through the black hole: %q", got)
	case <-time.After(300 * time.Millisecond):
	}
	n.Blackhole(0)
	if got := <-answer; got != "later\n" {
		t.Fatalf("after: the new connection got %q", got)
	}
	old.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := bufio.NewReader(old).ReadString('\n'); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("after: the swallowed connection read %v, want it reset", err)
	}
}
