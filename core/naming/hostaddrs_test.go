package naming

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/record"
	ma "github.com/multiformats/go-multiaddr"
)

// TestHostLookupDoesNotWaitOnADeadHost: a host that is down makes its DHT
// lookup wait on a dial until it times out. A resolve waits hostWait for
// it, no longer, and lists the addresses the node knew; the lookup goes on
// once for every resolve that asks meanwhile, and its answer serves the
// next resolve from the cache. The DHT lookup is a stand-in here; the
// whole path runs across nodes in core/bench's TestWAN.
func TestHostLookupDoesNotWaitOnADeadHost(t *testing.T) {
	h, err := libp2p.New(libp2p.NoListenAddrs)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	_, pub, _ := crypto.GenerateEd25519Key(nil)
	dead, _ := peer.IDFromPublicKey(pub)
	known := ma.StringCast("/ip4/192.0.2.7/udp/4001/quic-v1")
	h.Peerstore().AddAddr(dead, known, peerstore.TempAddrTTL)
	found := ma.StringCast("/ip4/192.0.2.8/udp/4001/quic-v1")

	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var lookups atomic.Int32
		s := &Service{host: h, addrCache: newTTLCache[peer.ID, []string](8, addrCacheTTL),
			peerRecords: newTTLCache[peer.ID, *record.Envelope](8, peerRecordsFresh)}
		s.life, s.cancel = context.WithCancel(context.Background())
		defer s.cancel()
		s.findPeerDHT = func(ctx context.Context, id peer.ID) (peer.AddrInfo, error) {
			lookups.Add(1)
			select { // the dial to a dead machine, until it times out
			case <-release:
				return peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{found}}, nil
			case <-ctx.Done():
				return peer.AddrInfo{}, ctx.Err()
			}
		}

		start := time.Now()
		done := make(chan []string, 2)
		for range 2 {
			go func() { done <- s.peerAddrs(t.Context(), dead, nil) }()
		}
		for range 2 {
			if got := <-done; !slices.Equal(got, []string{known.String()}) {
				t.Errorf("while the lookup hangs: %v; want the known address %s", got, known)
			}
		}
		if waited := time.Since(start); waited != hostWait {
			t.Errorf("the resolves waited %v for the host; want hostWait, %v", waited, hostWait)
		}
		if n := lookups.Load(); n != 1 {
			t.Errorf("%d lookups for two resolves at once; want one shared", n)
		}

		close(release)
		synctest.Wait()
		if got := s.peerAddrs(t.Context(), dead, nil); !slices.Equal(got, []string{found.String()}) {
			t.Errorf("after the lookup ended: %v; want its answer %s from the cache", got, found)
		}
		if n := lookups.Load(); n != 1 {
			t.Errorf("%d lookups; the cached answer should serve the third resolve", n)
		}
	})
}
