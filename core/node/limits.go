package node

import (
	"fmt"
	"strings"
	"syscall"

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
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(concrete))
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	return rm, nil
}

// machineShare mirrors AutoScale's choice (an eighth of the memory, half the
// file descriptors) for the limit the config leaves at 0.
func machineShare() (int64, int) {
	var info syscall.Sysinfo_t
	mem := int64(1 << 30)
	if syscall.Sysinfo(&info) == nil {
		mem = int64(info.Totalram) * int64(info.Unit) / 8
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
