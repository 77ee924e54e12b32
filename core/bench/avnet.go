package bench

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"google.golang.org/grpc/test/bufconn"

	"github.com/avnode/avnode/core/api"
	"github.com/avnode/avnode/core/daemon"
	"github.com/avnode/avnode/core/idkey"
	"github.com/avnode/avnode/core/keystore"
	"github.com/avnode/avnode/core/node"
	"github.com/avnode/avnode/core/repo"
)

// avMember is a whole avnode daemon, as `avnode run` starts it (repo on
// disk with its LevelDB datastore and block files, names, content, control
// API), with the benchmark's config file on top of the embedded defaults.
type avMember struct {
	dir, configFile string
	wan             *wanPort // nil: loopback TCP
	d               *daemon.Daemon
	api             *api.Client // the control API, as the CLI calls it
	stopWatch       func()
	keys            sync.Map // record keys the DHT stored here, across restarts: when last
}

// benchConfig fits a hundred nodes into one process: loopback TCP only,
// a connection manager that keeps the open files of the whole network
// under the machine's limit, claims cheap to make, nothing else listening.
func benchConfig(limits connLimits) string {
	return fmt.Sprintf(`listen: [/ip4/127.0.0.1/tcp/0]
connmgr: {low: %d, high: %d, grace: %s}
names: {claim_difficulty: 8}
nat: {autonat: false, hole_punching: false, relay_client: false, port_map: false, reachability: public}
metrics: {listen: ""}
dashboard: {listen: ""}
log: {level: error}
`, limits.low, limits.high, limits.grace)
}

func (m *avMember) host() host.Host             { return m.d.Node.Host }
func (m *avMember) kad() *dht.IpfsDHT           { return m.d.Node.DHT }
func (m *avMember) storedAt(k string) time.Time { return loadTime(&m.keys, k) }

func (m *avMember) start() error {
	opts := daemon.Options{RepoDir: m.dir, ConfigFile: m.configFile, Environ: []string{}, LogOutput: io.Discard}
	var apiConn *bufconn.Listener
	if m.wan != nil {
		// On the simulated network: its QUIC address, and the control API
		// on an in-memory listener, which a synctest bubble can wait on.
		listen, hostOpts := m.wan.next()
		apiConn = bufconn.Listen(64 << 10)
		opts.Network = &daemon.Network{Host: hostOpts, API: apiConn}
		opts.Environ = []string{"AVNODE_LISTEN=" + listen}
	}
	d, err := daemon.Start(opts)
	if err != nil {
		return fmt.Errorf("start node in %s: %w", m.dir, err)
	}
	m.d = d
	m.api = api.NewClient(m.dir, repo.SocketFile)
	if apiConn != nil {
		m.api = api.NewClientDialing(m.dir, repo.SocketFile, apiConn.DialContext)
	}
	m.stopWatch = d.Node.WatchRecords(func(r node.RecordStored) { m.keys.Store(r.Key, time.Now()) })
	return nil
}

func (m *avMember) stop() {
	if m.d == nil {
		return
	}
	m.stopWatch()
	if m.wan != nil {
		m.wan.kill()
	}
	m.d.Node.Host.Close() // the peers see the connections drop first
	m.d.Stop()
	m.d = nil
}

// resolve asks the node's control API, as `avnode resolve NAME` does.
func (m *avMember) resolve(ctx context.Context, name string) error {
	return m.api.Call(ctx, "GET", "/v1/resolve", url.Values{"name": {name}}, nil, nil)
}

// setRecord changes a record through the control API, as `avnode record
// set NAME TYPE VALUE` does: the zone is signed and put to its holders.
func (m *avMember) setRecord(ctx context.Context, name, typ, value string) error {
	q := url.Values{"name": {name}, "type": {typ}, "value": {value}}
	return m.api.Call(ctx, "POST", "/v1/record/set", q, nil, nil)
}

// newKey makes an Ed25519 identity key in the node's keystore, for a claim.
func (m *avMember) newKey(name string) error { return m.newKeyOfType(name, idkey.TypeEd25519) }

// newKeyOfType makes an identity key of a type idkey.ParseType names.
func (m *avMember) newKeyOfType(name, typeName string) error {
	keys, err := keystore.Open(m.d.Repo.Path(repo.KeystoreDir))
	if err != nil {
		return err
	}
	_, err = keys.GenerateType(name, typeName)
	return err
}

func newAvMembers(dir string, count int, limits connLimits, w *wan) ([]member, error) {
	configFile := filepath.Join(dir, "bench.yaml")
	if err := os.WriteFile(configFile, []byte(benchConfig(limits)), 0o644); err != nil {
		return nil, err
	}
	members := make([]member, count)
	for i := range members {
		members[i] = &avMember{dir: filepath.Join(dir, fmt.Sprintf("n%03d", i)), configFile: configFile, wan: w.newPort()}
	}
	return members, nil
}
