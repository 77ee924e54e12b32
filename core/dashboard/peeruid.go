package dashboard

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

// sameUserListener hands out connections that close themselves unread
// unless a process of the node's own user opened them: the dashboard
// listens on TCP, which any local process can reach, so the kernel says
// whose socket is at the other end. The check runs in the connection's own
// goroutine, at its first read, so that a flood of foreign connections
// does not hold up the owner's in the accept loop.
type sameUserListener struct {
	net.Listener
	refusals *refusalLog
}

func (l *sameUserListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &checkedConn{Conn: conn, refusals: l.refusals}, nil
}

// checkedConn checks its peer's user before its first read.
type checkedConn struct {
	net.Conn
	refusals *refusalLog
	once     sync.Once
	err      error
}

func (c *checkedConn) Read(p []byte) (int, error) {
	c.once.Do(c.check)
	if c.err != nil {
		return 0, c.err
	}
	return c.Conn.Read(p)
}

func (c *checkedConn) check() {
	uid, err := loopbackPeerUID(c.Conn)
	if err == nil && uid != uint32(os.Getuid()) {
		err = fmt.Errorf("the connection is from uid %d", uid)
	}
	if err == nil {
		return
	}
	c.err = err
	c.refusals.note(err)
	// A reset, not a close: no TIME_WAIT left behind for each refusal.
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Conn.Close()
}

// refusalLog logs refused connections at most once per refusalEvery, with
// how many it kept quiet about: another user's flood must not flood the log.
type refusalLog struct {
	log        *slog.Logger
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

const refusalEvery = 10 * time.Second

func (r *refusalLog) note(err error) {
	r.mu.Lock()
	if time.Since(r.last) < refusalEvery {
		r.suppressed++
		r.mu.Unlock()
		return
	}
	r.last = time.Now()
	suppressed := r.suppressed
	r.suppressed = 0
	r.mu.Unlock()
	r.log.Warn("dashboard: refused a connection from another user", "err", err, "similar_since_last", suppressed)
}
