package bench

import (
	"context"
	"errors"
	base32 "github.com/multiformats/go-base32"
	"sync"
	"time"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

// The baseline: bare libp2p hosts (TCP, the default security and muxers,
// the same connection manager limits) running kad-dht with an in-memory
// store and a namespace that takes any value. Nothing of avnode runs on
// them; they speak their own protocol prefix.
const (
	bareNamespace = "bench"
	barePrefix    = "/avnode-bench-bare"
)

type acceptAll struct{}

func (acceptAll) Validate(string, []byte) error        { return nil }
func (acceptAll) Select(string, [][]byte) (int, error) { return 0, nil }

type bareMember struct {
	cm    connLimits
	wan   *wanPort // nil: loopback TCP
	key   crypto.PrivKey
	store *keyRecorder
	h     host.Host
	d     *dht.IpfsDHT
}

// connLimits are the connection manager's, the same in both networks.
type connLimits struct {
	low, high int
	grace     time.Duration
}

func newBareMember(limits connLimits, port *wanPort) (*bareMember, error) {
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, err
	}
	store := &keyRecorder{Batching: dssync.MutexWrap(ds.NewMapDatastore())}
	return &bareMember{cm: limits, wan: port, key: key, store: store}, nil
}

func (m *bareMember) host() host.Host             { return m.h }
func (m *bareMember) kad() *dht.IpfsDHT           { return m.d }
func (m *bareMember) storedAt(k string) time.Time { return loadTime(&m.store.keys, k) }

// loadTime reads a time kept in a sync.Map; zero if there is none.
func loadTime(m *sync.Map, k string) time.Time {
	v, _ := m.Load(k)
	at, _ := v.(time.Time)
	return at
}

func (m *bareMember) start() error {
	cm, err := connmgr.NewConnManager(m.cm.low, m.cm.high, connmgr.WithGracePeriod(m.cm.grace))
	if err != nil {
		return err
	}
	opts := []libp2p.Option{libp2p.Identity(m.key), libp2p.ConnectionManager(cm), libp2p.DisableMetrics(), libp2p.NoTransports}
	if m.wan != nil {
		listen, simOpts := m.wan.next()
		opts = append(opts, libp2p.ListenAddrStrings(listen), libp2p.Transport(libp2pquic.NewTransport))
		opts = append(opts, simOpts...)
	} else {
		opts = append(opts, libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.Transport(tcp.NewTCPTransport))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return err
	}
	d, err := dht.New(h, dht.Mode(dht.ModeServer), dht.ProtocolPrefix(barePrefix), dht.Datastore(m.store),
		dht.Validator(record.NamespacedValidator{bareNamespace: acceptAll{}, "pk": record.PublicKeyValidator{}}))
	if err != nil {
		h.Close()
		return err
	}
	m.h, m.d = h, d
	return nil
}

func (m *bareMember) stop() {
	if m.wan != nil {
		m.wan.kill()
	}
	if m.d != nil {
		m.d.Close()
		m.h.Close()
	}
}

func (m *bareMember) getValue(ctx context.Context, key string, quorum int) error {
	v, err := m.d.GetValue(ctx, key, dht.Quorum(quorum))
	if err == nil && len(v) == 0 {
		return errors.New("empty value")
	}
	return err
}

// keyRecorder remembers which value records the DHT stored, and when, as the node's
// record watcher does for avnode's nodes.
type keyRecorder struct {
	ds.Batching
	keys sync.Map
}

func (s *keyRecorder) Put(ctx context.Context, key ds.Key, value []byte) error {
	if err := s.Batching.Put(ctx, key, value); err != nil {
		return err
	}
	if parts := key.List(); len(parts) == 2 {
		if raw, err := base32.RawStdEncoding.DecodeString(parts[1]); err == nil {
			s.keys.Store(string(raw), time.Now())
		}
	}
	return nil
}
