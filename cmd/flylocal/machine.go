package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
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
	stateStarting  = "starting" // booting: no process yet
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

	mu         sync.Mutex // guards the fields below, up to load
	state      string
	cmd        *exec.Cmd
	exited     chan struct{}
	splices    map[*splice]struct{}
	exit       string        // how the last process ended ("exit status 0", "signal: killed")
	frozen     bool          // SIGSTOPped while still listed as started (a hung machine)
	checks     string        // the service check of the running process (health.go); "" with none
	startedAt  time.Time     // when the running process started
	cancelBoot chan struct{} // closed to end a boot early (stateStarting only)

	load   atomic.Int64 // requests in flight + live WebSockets through the edges
	routed atomic.Int64 // requests and WebSockets the edges delivered to it, ever
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

// routable: the edges may pick it, as Fly's proxy picks a started machine
// whose service check passes.
func (m *machine) routable() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state == stateStarted && m.checks == checksPassing
}

// running: its process runs and DNS lists it, checks passing or not.
func (m *machine) running() bool { return m.State() == stateStarted }

// start boots the machine, runs the server process and waits until a
// service check passes (health.go), as a Fly start does.
func (m *machine) start(ctx context.Context) error {
	m.mu.Lock()
	if m.state == stateStarted || m.state == stateStopping || m.state == stateStarting {
		m.mu.Unlock()
		return nil
	}
	cancel := make(chan struct{})
	m.state, m.cancelBoot, m.checks = stateStarting, cancel, ""
	m.mu.Unlock()
	if err := m.c.bootWait(cancel); err != nil {
		return fmt.Errorf("machine %s: %w", m.ID, err)
	}
	return m.run(ctx, cancel)
}

// run starts the server process of a machine that booted, unless the boot
// was cancelled meanwhile, and waits for its checks.
func (m *machine) run(ctx context.Context, boot chan struct{}) error {
	m.mu.Lock()
	if m.state != stateStarting || m.cancelBoot != boot {
		m.mu.Unlock()
		return fmt.Errorf("machine %s: stopped while booting", m.ID)
	}
	m.cancelBoot = nil
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
		m.state = stateStopped
		m.mu.Unlock()
		return fmt.Errorf("machine %s: %w", m.ID, err)
	}
	exited := make(chan struct{})
	m.cmd, m.exited, m.state, m.checks, m.startedAt = cmd, exited, stateStarted, checksWaiting, time.Now()
	m.mu.Unlock()
	go m.copyLogs(out)
	go func() {
		cmd.Wait()
		m.mu.Lock()
		m.exit = cmd.ProcessState.String()
		if m.cmd == cmd {
			m.state, m.frozen, m.checks = stateStopped, false, ""
		}
		m.mu.Unlock()
		close(exited)
	}()
	return m.awaitChecks(ctx, cmd, exited)
}

func (m *machine) copyLogs(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if m.c.logs != nil {
			fmt.Fprintf(m.c.logs, "[%s %s] %s\n", m.Region, m.ID, sc.Text())
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
	if m.cancelBootLocked() || m.state == stateStopped || m.cmd == nil {
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

// cancelBootLocked ends a boot in progress (the machine is stopped again,
// its process never ran); false when the machine is not booting. m.mu is
// held.
func (m *machine) cancelBootLocked() bool {
	if m.state != stateStarting {
		return false
	}
	close(m.cancelBoot)
	m.state, m.cancelBoot = stateStopped, nil
	return true
}

// kill is kill -9: no close frames, no drain.
func (m *machine) kill() {
	m.mu.Lock()
	booting := m.cancelBootLocked()
	cmd, exited := m.cmd, m.exited
	m.mu.Unlock()
	if cmd == nil || booting {
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
	if m.cmd == nil || m.state == stateStopped || m.state == stateStarting {
		return 0
	}
	return m.cmd.Process.Pid
}

// checkState is the running process's check state and start time (RFC
// 3339, to the nanosecond); empty without a process.
func (m *machine) checkState() (checks, startedAt string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state == stateStopped || m.state == stateStarting || m.checks == "" {
		return "", ""
	}
	return m.checks, m.startedAt.Format(time.RFC3339Nano)
}

func (m *machine) isFrozen() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.frozen
}
