// Command attackcost measures what one address's attacks cost a server: it
// starts the given server binary as a Fly machine of region fra (with a
// local Fly DNS and four same-region peers that hold nothing), pinned to
// one core, runs each attack from one address on loopback, and prints the
// server's CPU per request (or per second) from /proc. Run it on two
// builds to compare them side by side:
//
//	attackcost -server ./party-sockets -cpu 0 -tool-cpu 1
//
// Every attack is bounded in count and time, and goes only to 127.0.0.0/8.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/party-sockets/party-sockets/internal/flydns"
	"github.com/party-sockets/party-sockets/internal/procstat"
	"github.com/party-sockets/party-sockets/internal/wsframe"
	"github.com/party-sockets/party-sockets/regions"
)

const selfID = "0a1b2c3d4e5f01"

type result struct {
	Attack  string  `json:"attack"`
	Count   int64   `json:"count"`    // requests, frames or cycles the attacker completed
	Refused int64   `json:"refused"`  // of them, refused by a limit
	Seconds float64 `json:"seconds"`  // wall time of the attack
	CPU     float64 `json:"cpu_s"`    // server CPU seconds spent
	PerUnit float64 `json:"cpu_us"`   // server CPU µs per unit
	Load    float64 `json:"cpu_frac"` // server CPU seconds per second
	Extra   string  `json:"extra,omitempty"`
}

type target struct {
	addr string // host:port
	pid  int
}

func main() {
	bin := flag.String("server", "", "server binary to attack (required)")
	cpu := flag.String("cpu", "0", "core to pin the server to (taskset -c); empty: no pinning")
	only := flag.String("only", "", "comma-separated attacks to run (default all)")
	dur := flag.Duration("duration", 3*time.Second, "length of each timed attack")
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "attackcost: -server is required")
		os.Exit(2)
	}
	attacks := []struct {
		name string
		run  func(target, time.Duration) result
	}{
		{"probe", attackProbe},
		{"pings", attackPings},
		{"fragments", attackFragments},
		{"escaped_keys", attackKeys},
		{"upgrade_create", attackCycles},
		{"metrics", attackMetrics},
		{"walk", attackWalk},
	}
	for _, a := range attacks {
		if *only != "" && !strings.Contains(","+*only+",", ","+a.name+",") {
			continue
		}
		tg, stop, err := start(*bin, *cpu)
		if err != nil {
			fmt.Fprintln(os.Stderr, "attackcost:", err)
			os.Exit(1)
		}
		before, _ := procstat.Read(tg.pid)
		r := a.run(tg, *dur)
		after, _ := procstat.Read(tg.pid)
		stop()
		r.Attack = a.name
		r.CPU = after.CPUSeconds - before.CPUSeconds
		if r.Count > 0 {
			r.PerUnit = r.CPU / float64(r.Count) * 1e6
		}
		if r.Seconds > 0 {
			r.Load = r.CPU / r.Seconds
		}
		json.NewEncoder(os.Stdout).Encode(r)
	}
}

// start runs the server as machine selfID of region fra, with a Fly DNS
// listing it and four peers of fra on 127.0.9.11-14 at the same port.
func start(bin, cpu string) (target, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return target{}, nil, err
	}
	port := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	fly, err := flydns.Listen("app", nil)
	if err != nil {
		return target{}, nil, err
	}
	fly.Add(selfID, "fra", "127.0.0.1")
	var peers []*http.Server
	for i := range 4 {
		ip := fmt.Sprintf("127.0.9.%d", 11+i)
		pl, err := net.Listen("tcp", net.JoinHostPort(ip, port))
		if err != nil {
			return target{}, nil, err
		}
		// Like a real machine: 404 with a body, which a probe must read
		// for its connection to be reused.
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(404)
			w.Write([]byte(`{"error":"Room not found"}` + "\n"))
		})}
		go srv.Serve(pl)
		peers = append(peers, srv)
		fly.Add(fmt.Sprintf("0a1b2c3d4e5f2%d", i), "fra", ip)
	}
	args := []string{bin}
	if cpu != "" {
		args = append([]string{"taskset", "-c", cpu}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "HOST=127.0.0.1", "PORT="+port, "FLY_APP_NAME=app", "INSTANCE_ID="+selfID,
		"REGION=fra", "INTERNAL_DNS="+fly.Addr, "DASHBOARD_URL=http://127.0.0.1:9/", "LOG_LEVEL=error", "GOMEMLIMIT=200MiB")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		return target{}, nil, err
	}
	go io.Copy(io.Discard, stderr)
	stop := func() {
		cmd.Process.Kill()
		cmd.Wait()
		for _, p := range peers {
			p.Close()
		}
		fly.Close()
	}
	addr := "127.0.0.1:" + port
	for range 200 {
		if resp, err := http.Get("http://" + addr + "/health"); err == nil {
			resp.Body.Close()
			return target{addr: addr, pid: cmd.Process.Pid}, stop, nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	stop()
	return target{}, nil, fmt.Errorf("server %s did not start", bin)
}

var noRedirect = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Transport:     &http.Transport{MaxIdleConnsPerHost: 64},
	Timeout:       10 * time.Second,
}

func flyHeader(ip string) http.Header {
	return http.Header{"Fly-Region": {"fra"}, "Fly-Client-IP": {ip}}
}

func do(method, url string, hdr http.Header) int {
	req, _ := http.NewRequest(method, url, nil)
	req.Header = hdr
	resp, err := noRedirect.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// attackProbe: 600 requests for absent codes of this region from one
// address, GET /room/<code>, upgrades and HEAD in turn.
func attackProbe(tg target, _ time.Duration) result {
	start := time.Now()
	var r result
	hdr := flyHeader("203.0.113.50")
	for i := range 600 {
		code := regions.Encode(regions.Pack(6, uint32(5000+i)))
		var status int
		switch i % 3 {
		case 0:
			status = do("GET", "http://"+tg.addr+"/room/"+code, hdr)
		case 1:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			ws, resp, err := websocket.Dial(ctx, "ws://"+tg.addr+"/"+code, &websocket.DialOptions{HTTPHeader: hdr})
			cancel()
			if err == nil {
				ws.CloseNow()
			} else if resp != nil {
				status = resp.StatusCode
			}
		case 2:
			status = do("HEAD", "http://"+tg.addr+"/"+code, hdr)
		}
		r.Count++
		if status == 429 {
			r.Refused++
		}
	}
	r.Seconds = time.Since(start).Seconds()
	_, port, _ := net.SplitHostPort(tg.addr)
	r.Extra = fmt.Sprintf("%d sockets in TIME-WAIT to the peers", procstat.TimeWait("127.0.9.", port))
	return r
}

// rawConn is an upgraded socket written frame by frame.
func rawConn(addr string) (net.Conn, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 101 {
		c.Close()
		return nil, fmt.Errorf("upgrade: %v", err)
	}
	go io.Copy(io.Discard, c) // read whatever the server answers
	return c, nil
}

// flood writes one frame over and over on one socket for d.
func flood(tg target, d time.Duration, first, each []byte) result {
	c, err := rawConn(tg.addr)
	if err != nil {
		return result{Extra: err.Error()}
	}
	defer c.Close()
	var batch []byte
	for range 100 {
		batch = append(batch, each...)
	}
	start := time.Now()
	var r result
	c.SetWriteDeadline(start.Add(d))
	if first != nil {
		c.Write(first)
	}
	for time.Since(start) < d {
		if _, err := c.Write(batch); err != nil {
			if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
				r.Extra = "socket closed by the server"
			}
			break
		}
		r.Count += 100
	}
	r.Seconds = time.Since(start).Seconds()
	return r
}

// attackPings: one socket sending pings as fast as the server takes them.
func attackPings(tg target, d time.Duration) result {
	return flood(tg, d, nil, wsframe.Client(true, wsframe.OpPing, nil))
}

// attackFragments: one message of endless empty continuation frames.
func attackFragments(tg target, d time.Duration) result {
	first := wsframe.Client(false, wsframe.OpText, []byte(`{"type":`))
	return flood(tg, d, first, wsframe.Client(false, wsframe.OpContinuation, nil))
}

// attackKeys: four sockets under the message rate (90/s), each sending
// 64 KB frames full of escaped keys.
func attackKeys(tg target, d time.Duration) result {
	var keys []string
	for i := 0; len(strings.Join(keys, ",")) < 60000; i++ {
		keys = append(keys, fmt.Sprintf(`"\u0061%d":1`, i))
	}
	msg := []byte(`{"type":"send",` + strings.Join(keys, ",") + `}`)
	var sent atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), d+5*time.Second)
			defer cancel()
			ws, _, err := websocket.Dial(ctx, "ws://"+tg.addr+"/", nil)
			if err != nil {
				return
			}
			defer ws.CloseNow()
			go func() {
				for {
					if _, _, err := ws.Read(ctx); err != nil {
						return
					}
				}
			}()
			tick := time.NewTicker(time.Second / 90)
			defer tick.Stop()
			for time.Since(start) < d {
				<-tick.C
				if ws.Write(ctx, websocket.MessageText, msg) != nil {
					return
				}
				sent.Add(1)
			}
		}()
	}
	wg.Wait()
	return result{Count: sent.Load(), Seconds: time.Since(start).Seconds()}
}

// attackCycles: upgrade, create, close, as fast as one address can.
func attackCycles(tg target, d time.Duration) result {
	var r result
	start := time.Now()
	for time.Since(start) < d {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ws, resp, err := websocket.Dial(ctx, "ws://"+tg.addr+"/", nil)
		r.Count++
		if err != nil {
			cancel()
			if resp != nil && resp.StatusCode == 429 {
				r.Refused++
			}
			continue
		}
		ws.Write(ctx, websocket.MessageText, []byte(`{"type":"create","clientId":"c","maxClients":2}`))
		if _, b, err := ws.Read(ctx); err != nil || !strings.Contains(string(b), `"created"`) {
			r.Refused++
		}
		ws.CloseNow()
		cancel()
	}
	r.Seconds = time.Since(start).Seconds()
	return r
}

// attackMetrics: /metrics as fast as one client can, on 4 connections.
func attackMetrics(tg target, d time.Duration) result {
	return hammer(d, func(int) int { return do("GET", "http://"+tg.addr+"/metrics", nil) })
}

// attackWalk: GET /room/<random code of fra> from one address.
func attackWalk(tg target, d time.Duration) result {
	hdr := flyHeader("203.0.113.60")
	return hammer(d, func(i int) int {
		return do("GET", "http://"+tg.addr+"/room/"+regions.Encode(regions.Pack(6, uint32(900000+i))), hdr)
	})
}

// hammer runs f on 4 goroutines for d, counting calls and 429s.
func hammer(d time.Duration, f func(i int) int) result {
	var n, refused atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < d {
				i := n.Add(1)
				if f(int(i)) == 429 {
					refused.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return result{Count: n.Load(), Refused: refused.Load(), Seconds: time.Since(start).Seconds()}
}
