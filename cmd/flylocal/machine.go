package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Machine states, as fly machines list shows them.
const (
	stateStarted   = "started"
	stateStopping  = "stopping"
	stateStopped   = "stopped"
	stateSuspended = "suspended"
)

// machine is one real server process of this repo on its own loopback
// address.
type machine struct {
	ID, Region, IP string
	Port           int
	c              *cluster

	mu      sync.Mutex // guards state, cmd, exited, splices
	state   string
	cmd     *exec.Cmd
	exited  chan struct{}
	splices map[*splice]struct{}
	exit    string // how the last process ended ("exit status 0", "signal: killed")
	frozen  bool   // SIGSTOPped while still listed as started (a hung machine)

	load atomic.Int64 // requests in flight + live WebSockets through the edges
}

// newSecret is 32 random bytes in hex.
func newSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func newMachineID() string {
	b := make([]byte, 7)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (m *machine) addr() string { return net.JoinHostPort(m.IP, strconv.Itoa(m.Port)) }

func (m *machine) State() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state
}

func (m *machine) routable() bool { return m.State() == stateStarted }

// start runs the server process and waits until /health answers.
func (m *machine) start(ctx context.Context) error {
	m.mu.Lock()
	if m.state == stateStarted || m.state == stateStopping {
		m.mu.Unlock()
		return nil
	}
	cmd := exec.Command(m.c.bin)
	cmd.Env = append(os.Environ(),
		"FLY_APP_NAME="+m.c.app,
		"FLY_MACHINE_ID="+m.ID,
		"FLY_ALLOC_ID="+m.ID,
		"FLY_REGION="+m.Region,
		"FLY_PRIVATE_IP="+m.IP,
		"HOST="+m.IP,
		"PORT="+strconv.Itoa(m.Port),
		"INTERNAL_DNS="+m.c.dns.Addr,
		"DASHBOARD_URL="+m.c.dashboardURL(),
	)
	cmd.Env = append(cmd.Env, m.c.machineEnv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, _ := cmd.StderrPipe()
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		m.mu.Unlock()
		return fmt.Errorf("machine %s: %w", m.ID, err)
	}
	exited := make(chan struct{})
	m.cmd, m.exited, m.state = cmd, exited, stateStarted
	m.mu.Unlock()
	go m.copyLogs(out)
	go func() {
		cmd.Wait()
		m.mu.Lock()
		m.exit = cmd.ProcessState.String()
		if m.cmd == cmd {
			m.state = stateStopped
			m.frozen = false
		}
		m.mu.Unlock()
		close(exited)
	}()
	return m.waitHealthy(ctx, exited)
}

func (m *machine) copyLogs(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if m.c.logs != nil {
			fmt.Fprintf(m.c.logs, "[%s %s] %s\n", m.Region, m.ID, sc.Text())
		}
	}
}

func (m *machine) waitHealthy(ctx context.Context, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get("http://" + m.addr() + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("machine %s exited while starting", m.ID)
		case <-ctx.Done():
			return fmt.Errorf("machine %s: not healthy: %w", m.ID, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop is what Fly does on stop, deploy and autostop: close frames to the
// machine's WebSocket clients (when enabled), the kill signal, then SIGKILL
// after the kill timeout.
func (m *machine) stop() { m.stopWith(m.c.stopCloseFrames) }

// stopWith stops the machine, with or without close frames first (a deploy
// that lets live rooms drain sends none).
func (m *machine) stopWith(closeFrames bool) {
	m.mu.Lock()
	if m.state == stateStopped || m.cmd == nil {
		m.mu.Unlock()
		return
	}
	if m.state == stateSuspended {
		m.cmd.Process.Signal(syscall.SIGCONT)
	}
	if m.frozen {
		m.cmd.Process.Signal(syscall.SIGCONT)
		m.frozen = false
	}
	m.state = stateStopping
	cmd, exited := m.cmd, m.exited
	m.mu.Unlock()
	if closeFrames {
		m.closeSplices()
	}
	cmd.Process.Signal(m.c.killSignal)
	select {
	case <-exited:
	case <-time.After(m.c.killTimeout):
		cmd.Process.Kill()
		<-exited
	}
}

// kill is kill -9: no close frames, no drain.
func (m *machine) kill() {
	m.mu.Lock()
	cmd, exited := m.cmd, m.exited
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-exited
}

// suspend freezes the process (SIGSTOP) after sending close frames, as
// Fly's proxy does before suspending a machine.
func (m *machine) suspend() error {
	m.mu.Lock()
	if m.state != stateStarted {
		defer m.mu.Unlock()
		return fmt.Errorf("machine %s is %s", m.ID, m.state)
	}
	m.state = stateSuspended
	cmd := m.cmd
	m.mu.Unlock()
	if m.c.stopCloseFrames {
		m.closeSplices()
	}
	return cmd.Process.Signal(syscall.SIGSTOP)
}

func (m *machine) resume() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state != stateSuspended {
		return fmt.Errorf("machine %s is %s", m.ID, m.state)
	}
	m.state = stateStarted
	return m.cmd.Process.Signal(syscall.SIGCONT)
}

// freeze stops the process (SIGSTOP) but leaves it listed as started: a
// hung machine that DNS and the edges still offer. thaw resumes it.
func (m *machine) freeze(on bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state != stateStarted || m.frozen == on {
		return fmt.Errorf("machine %s is %s (frozen: %v)", m.ID, m.state, m.frozen)
	}
	m.frozen = on
	if on {
		return m.cmd.Process.Signal(syscall.SIGSTOP)
	}
	return m.cmd.Process.Signal(syscall.SIGCONT)
}

func (m *machine) lastExit() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.exit
}

func (m *machine) addSplice(s *splice) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.splices == nil {
		m.splices = map[*splice]struct{}{}
	}
	m.splices[s] = struct{}{}
}

func (m *machine) removeSplice(s *splice) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.splices, s)
}

func (m *machine) closeSplices() {
	m.mu.Lock()
	list := make([]*splice, 0, len(m.splices))
	for s := range m.splices {
		list = append(list, s)
	}
	m.mu.Unlock()
	for _, s := range list {
		s.goingAway()
	}
}

// pid is the process id, 0 when not running.
func (m *machine) pid() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil || m.state == stateStopped {
		return 0
	}
	return m.cmd.Process.Pid
}

func (m *machine) isFrozen() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.frozen
}
