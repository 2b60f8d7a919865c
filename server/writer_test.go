package server

import (
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/closecode"
	"github.com/party-sockets/party-sockets/internal/testutil"
)

// Close keeps its end's queue policy (closecode.Ends). The writer is held
// on a first batch (its socket lock taken, as a slow write would) while
// two more frames queue. An end that flushes (every end a room sends)
// writes them before its close; one that drops gives them and their
// budget back at once, and its close follows the batch already out.
func TestCloseKeepsTheQueuePolicy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		end  closecode.End
		want []string // the frames the client reads before the close
	}{
		{closecode.EndRoomClosed, []string{`"a"`, `"b"`, `"c"`}},
		{closecode.EndSlow, []string{`"a"`}},
	}
	for _, tt := range tests {
		t.Run(tt.end.Label(), func(t *testing.T) {
			ts := newTestServer(t, Config{})
			cl := testutil.Dial(t, ts.URL)
			var c *conn
			testutil.Eventually(t, 5*time.Second, "the socket to be registered", func() bool {
				if l := ts.conns.list(); len(l) == 1 {
					c = l[0]
				}
				return c != nil
			})
			c.raw.mu.Lock()
			held := true
			defer func() {
				if held {
					c.raw.mu.Unlock()
				}
			}()
			c.Send([]byte(`"a"`))
			testutil.Eventually(t, 5*time.Second, "the writer to take the first frame", func() bool {
				c.mu.Lock()
				defer c.mu.Unlock()
				return len(c.queue) == 0 && c.inflight == 3
			})
			c.Send([]byte(`"b"`))
			c.Send([]byte(`"c"`))
			used := ts.budget.Used()
			c.Close(tt.end)
			queued, closing := c.held()
			wantQueued, wantUsed := 9, used
			if !tt.end.Flush() {
				wantQueued, wantUsed = 3, used-2*(3+int64(queuedEntryBytes))
			}
			if queued != wantQueued || !closing || ts.budget.Used() != wantUsed {
				t.Errorf("after Close: %d bytes held (closing %v), budget %d; want %d (closing), budget %d",
					queued, closing, ts.budget.Used(), wantQueued, wantUsed)
			}
			c.raw.mu.Unlock()
			held = false
			for _, w := range tt.want {
				cl.Expect(w)
			}
			cl.ExpectClose(int(tt.end.Code()), tt.end.Text())
		})
	}
}
