package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"
)

// fleet is a running cmd/flylocal, driven through its control API.
type fleet struct {
	Edges    map[string]string `json:"edges"` // region → base URL
	Machines []fleetMachine    `json:"machines"`
	PID      int               `json:"pid"`

	cmd    *exec.Cmd
	exited chan struct{} // closed when flylocal has exited
	http   *http.Client
}

type fleetMachine struct {
	ID     string `json:"id"`
	Region string `json:"region"`
}

// machineView is the part of GET /.flylocal/machines the drill reads.
type machineView struct {
	ID       string `json:"id"`
	Region   string `json:"region"`
	State    string `json:"state"`
	PID      int    `json:"pid"`
	Clients  int    `json:"clients"`
	Frozen   bool   `json:"frozen"`
	RoomList []struct {
		Code string `json:"code"`
	} `json:"roomList"`
}

// flyEnv is fly.toml's [env] and the stop settings a machine gets on Fly.
type flyEnv struct {
	Env         map[string]string `toml:"env"`
	KillSignal  string            `toml:"kill_signal"`
	KillTimeout int               `toml:"kill_timeout"` // seconds
}

func readFlyToml(path string) (flyEnv, error) {
	var f flyEnv
	_, err := toml.DecodeFile(path, &f)
	return f, err
}

// moduleRoot is the directory of this module's go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run the drill inside the party-sockets module")
	}
	return filepath.Dir(gomod), nil
}

// buildBinaries builds the server and flylocal into dir.
func buildBinaries(root, dir string) (server, flylocal string, err error) {
	server, flylocal = filepath.Join(dir, "party-sockets"), filepath.Join(dir, "flylocal")
	for _, b := range [][2]string{{server, "."}, {flylocal, "./cmd/flylocal"}} {
		cmd := exec.Command("go", "build", "-o", b[0], b[1])
		cmd.Dir, cmd.Stderr = root, os.Stderr
		if err := cmd.Run(); err != nil {
			return "", "", fmt.Errorf("building %s: %w", b[1], err)
		}
	}
	return server, flylocal, nil
}

// fleetSpec is how the drill starts flylocal.
type fleetSpec struct {
	flylocal, server string
	regions          []string
	perRegion        int
	env              flyEnv
	timing           deployTiming
	killTimeout      time.Duration
	log              io.Writer
}

// startFleet starts flylocal on a random loopback /24 and free edge ports
// and waits for its JSON line. The machines get fly.toml's [env]; PORT is
// the port every machine listens on at its own address.
func startFleet(s fleetSpec) (*fleet, error) {
	port := s.env.Env["PORT"]
	if port == "" {
		port = "3000"
	}
	args := []string{"-bin", s.server, "-regions", strings.Join(s.regions, ","),
		"-per-region", strconv.Itoa(s.perRegion), "-port", "0", "-machine-port", port,
		"-ip-base", fmt.Sprintf("127.%d.%d.2", 10+rand.IntN(200), rand.IntN(250)),
		"-kill-timeout", s.killTimeout.String(), "-exit-with-parent",
		"-boot-delay", s.timing.boot.String(), "-health-grace", s.timing.grace.String(),
		"-health-interval", s.timing.interval.String()}
	if s.env.KillSignal != "" {
		args = append(args, "-kill-signal", s.env.KillSignal)
	}
	keys := make([]string, 0, len(s.env.Env))
	for k := range s.env.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k != "PORT" {
			args = append(args, "-env", k+"="+s.env.Env[k])
		}
	}
	cmd := exec.Command(s.flylocal, args...)
	cmd.Stderr = s.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	f := &fleet{cmd: cmd, exited: make(chan struct{}), http: &http.Client{Timeout: 30 * time.Second}}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		io.Copy(io.Discard, out)
	}()
	go func() { cmd.Wait(); close(f.exited) }()
	select {
	case l, ok := <-line:
		if !ok {
			return nil, errors.New("flylocal exited before it announced the cluster (see its log)")
		}
		if err := json.Unmarshal([]byte(l), f); err != nil {
			f.stop()
			return nil, fmt.Errorf("flylocal printed %q: %w", l, err)
		}
		return f, nil
	case <-time.After(3 * time.Minute):
		f.stop()
		return nil, errors.New("flylocal did not announce the cluster within 3 minutes")
	}
}

// stop shuts flylocal down (every machine drains, bounded by its kill
// timeout) and waits for it, at most a minute.
func (f *fleet) stop() {
	f.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-f.exited:
	case <-time.After(time.Minute):
		f.cmd.Process.Kill()
		<-f.exited
	}
}

func (f *fleet) controlURL() string { return f.Edges[f.Machines[0].Region] + "/.flylocal/" }

// post calls the control API; flylocal answers a machine action once it is
// done (a stop once the process exited).
func (f *fleet) post(ctx context.Context, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.controlURL()+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-Flylocal", "1")
	resp, err := f.http.Do(req)
	if err != nil {
		return fmt.Errorf("flylocal %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("flylocal %s: %s %s", path, resp.Status, bytes.TrimSpace(body))
	}
	return nil
}

func (f *fleet) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.controlURL()+path, nil)
	if err != nil {
		return err
	}
	resp, err := f.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("flylocal %s: %s", path, resp.Status)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(v)
}

func (f *fleet) machines(ctx context.Context) ([]machineView, error) {
	var out []machineView
	return out, f.get(ctx, "machines", &out)
}

func (f *fleet) act(ctx context.Context, id, action string) error {
	return f.post(ctx, "machines/"+id+"/"+action)
}

// deploy runs a rolling deploy of every machine and waits for its end.
func (f *fleet) deploy(ctx context.Context) error {
	if err := f.post(ctx, "deploy"); err != nil {
		return err
	}
	for {
		var st struct {
			Running  bool   `json:"running"`
			Finished bool   `json:"finished"`
			Error    string `json:"error"`
		}
		if err := f.get(ctx, "deploy", &st); err != nil {
			return err
		}
		if st.Finished {
			if st.Error != "" {
				return errors.New("deploy: " + st.Error)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// roomHeld reports whether a room exists, asked through an edge (the
// answer routed like a player's lookup) from src: a lookup that misses
// counts against its address's misses a minute, so each room's is asked
// from its own.
func (f *fleet) roomHeld(ctx context.Context, edge, code string, src net.IP) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, edge+"/room/"+code, nil)
	if err != nil {
		return false, err
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 5 * time.Second}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
	resp, err := hc.Do(req)
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, fmt.Errorf("GET /room/%s: %s", code, resp.Status)
}
