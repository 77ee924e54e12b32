package node

import (
	"fmt"
	"strings"
	"syscall"

	"github.com/pbnjay/memory"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"

	"github.com/avnode/avnode/core/config"
)

// newResourceManager scales libp2p's default limits to this machine (its
// memory and file-descriptor limit) unless the config fixes them.
func newResourceManager(cfg *config.Config) (network.ResourceManager, error) {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	concrete := limits.AutoScale()
	if cfg.Resources.MaxMemoryMB > 0 || cfg.Resources.MaxFDs > 0 {
		mem, fds := machineShare()
		if cfg.Resources.MaxMemoryMB > 0 {
			mem = int64(cfg.Resources.MaxMemoryMB) << 20
		}
		if cfg.Resources.MaxFDs > 0 {
			fds = cfg.Resources.MaxFDs
		}
		concrete = limits.Scale(mem, fds)
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(guardTransient(concrete)))
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	return rm, nil
}

// transientStreams is the least room for inbound streams that have not
// named their protocol yet, shared by all peers (libp2p's transient scope).
const transientStreams = 1024

// guardTransient keeps one peer from filling the transient scope. libp2p's
// defaults let a peer hold more inbound streams than that scope has room
// for, so one peer opening streams that never name a protocol made the
// node reset every other peer's new streams until its 10 s negotiation
// timeout (TestFloodSilentStreamsFromOnePeer). Here the scope has room for
// at least 1024 streams and each peer may hold a sixteenth of it: one
// address, whose 8 connections may each come with its own key, stays
// under half of it.
func guardTransient(c rcmgr.ConcreteLimitConfig) rcmgr.ConcreteLimitConfig {
	p := c.ToPartialLimitConfig()
	raise := func(v *rcmgr.LimitVal, least int) {
		if *v != rcmgr.Unlimited && int(*v) < least {
			*v = rcmgr.LimitVal(least)
		}
	}
	raise(&p.Transient.StreamsInbound, transientStreams)
	raise(&p.Transient.Streams, transientStreams+int(p.Transient.StreamsOutbound))
	raise(&p.System.StreamsInbound, 2*transientStreams)
	raise(&p.System.Streams, 2*transientStreams+int(p.System.StreamsOutbound))
	perPeer := rcmgr.LimitVal(transientStreams / 16)
	if in := p.PeerDefault.StreamsInbound; in == rcmgr.Unlimited || in > perPeer {
		p.PeerDefault.StreamsInbound = perPeer
	}
	return p.Build(c)
}

// machineShare mirrors AutoScale's choice (an eighth of the memory, half the
// file descriptors) for the limit the config leaves at 0.
func machineShare() (int64, int) {
	mem := int64(1 << 30)
	if total := memory.TotalMemory(); total > 0 { // what AutoScale reads, on every system
		mem = int64(total) / 8
	}
	var rl syscall.Rlimit
	fds := 512
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil {
		fds = int(rl.Cur / 2)
	}
	return mem, fds
}

func protocolID(prefix string) protocol.ID { return protocol.ID(prefix) }

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
