// Package daemon runs a node: it opens (or first creates) the repo, loads
// the config, starts the network core, the metrics endpoint and the control
// API, and shuts them down in order. The CLI's `avnode run` is a thin shell
// around Run; tests and local networks call it the same way.
package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/gologshim"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/pflag"

	"github.com/avnode/avnode/core/api"
	"github.com/avnode/avnode/core/config"
	"github.com/avnode/avnode/core/content"
	"github.com/avnode/avnode/core/dashboard"
	"github.com/avnode/avnode/core/exchange"
	"github.com/avnode/avnode/core/hosting"
	"github.com/avnode/avnode/core/keystore"
	"github.com/avnode/avnode/core/naming"
	"github.com/avnode/avnode/core/node"
	"github.com/avnode/avnode/core/policy"
	"github.com/avnode/avnode/core/repo"
	"github.com/avnode/avnode/sdk"
)

// ShutdownTimeout bounds a graceful stop.
const ShutdownTimeout = 5 * time.Second

// Options say which repo to run and where configuration comes from.
type Options struct {
	RepoDir    string
	ConfigFile string         // --config, optional
	Flags      *pflag.FlagSet // config flags, optional
	Environ    []string
	Ready      io.Writer // gets the ready line; stdout in the CLI
	LogOutput  io.Writer // stderr in the CLI
	// StartRoles starts the role plugins once the core runs; nil runs
	// none. The composition root (cmd/avnode) supplies it, so the core
	// never imports plugins/.
	StartRoles func(*Daemon) (Roles, error)
	// Network replaces the node's sockets with a simulated network's; nil
	// in `avnode run`.
	Network *Network
}

// Network is a simulated network for a daemon: the bench runs a thousand
// daemons on one, in virtual time, where a real socket would stall it.
type Network struct {
	Host []libp2p.Option // the transport and listen address the host uses
	API  net.Listener    // where the control API answers, instead of the repo's socket
}

// Roles is what the node needs of its role plugins.
type Roles interface {
	// RegisterAPI adds the roles' calls to the control API.
	RegisterAPI(*api.Server)
	// Services are what roles run for users (the gateway), for `avnode id`.
	Services() map[string]string
	// Statuses are the enabled roles and their state, those enabled at
	// run time among them.
	Statuses() []api.RoleStatus
	// WithCapability lists the running roles that declare a capability.
	WithCapability(capability string) []string
	Command(ctx context.Context, role, name string, args []string) (json.RawMessage, error)
	// StartRole and StopRole apply a change of the config's roles,
	// role_config or gateway.listen: the role starts with its section as
	// the file says now. Nothing is saved; the file already says it.
	StartRole(role string)
	StopRole(role string) error
	Close()
}

// Daemon is a running node with its control API and metrics.
type Daemon struct {
	Repo   *repo.Repo
	Config *config.Config
	Node   *node.Node
	Names  *naming.Service
	Owners *naming.Owners // who owns each name, as this node knows it
	// names is Names for the DHT's put hook, which runs from before
	// Names exists (storePolicy).
	names       atomic.Pointer[naming.Service]
	Hosting     *hosting.Service
	Roles       Roles // nil when the node runs no roles
	Policy      *policy.Policy
	Log         *slog.Logger
	api         *api.Server
	registerer  prometheus.Registerer
	metrics     *http.Server
	metricsURL  string               // where metrics are served; empty when off
	registry    *prometheus.Registry // the node's metrics, served or not; nil when neither metrics nor the dashboard are on
	dashboard   *dashboard.Server    // nil when off
	copiesSeen  copiesSeen
	contentSeen contentSeen
	opts        Options // what it started with: the config's sources, read again by a reload
	logLevel    slog.LevelVar
	reloadMu    sync.Mutex     // one config reload at a time
	applied     *config.Config // the config as applied: at start, then what reloads applied
	started     time.Time
}

// LoadConfig merges the config sources for a repo without opening it.
func LoadConfig(opts Options) (*config.Config, error) {
	src := config.Sources{ExtraFile: opts.ConfigFile, Environ: opts.Environ, Flags: opts.Flags}
	if repo.IsInitialized(opts.RepoDir) {
		src.RepoFile = fmt.Sprintf("%s/%s", opts.RepoDir, repo.ConfigFile)
	}
	return config.Load(src)
}

// ReadConfig reads the config again from the sources the daemon started
// with: what the repo's config.yaml says now, under the same flags and
// environment.
func (d *Daemon) ReadConfig() (*config.Config, error) { return LoadConfig(d.opts) }

// Run starts the daemon and blocks until ctx is cancelled, then shuts down.
func Run(ctx context.Context, opts Options) error {
	d, err := Start(opts)
	if err != nil {
		return err
	}
	<-ctx.Done()
	return d.Stop()
}

// Start brings everything up and prints the ready line. On error, whatever
// was started is stopped again and the repo is left as it was.
func Start(opts Options) (_ *Daemon, err error) {
	// Validate before creating anything, so a bad flag leaves no repo behind.
	cfg, err := LoadConfig(opts)
	if err != nil {
		return nil, err
	}
	if !repo.IsInitialized(opts.RepoDir) {
		if err := repo.Init(opts.RepoDir); err != nil {
			return nil, err
		}
		if cfg, err = LoadConfig(opts); err != nil {
			return nil, err
		}
	}
	r, err := repo.Open(opts.RepoDir)
	if err != nil {
		return nil, err
	}
	d := &Daemon{Repo: r, Config: cfg, started: time.Now(), opts: opts}
	d.Log = newLogger(cfg, opts.LogOutput, &d.logLevel)
	applied := *cfg
	d.applied = &applied
	routeLibp2pLogs(d.Log, cfg)
	defer func() {
		if err != nil {
			d.shutdown()
		}
	}()
	reg, err := d.startMetrics()
	if err != nil {
		return nil, err
	}
	d.registerer = reg
	if err := d.startPolicy(reg); err != nil {
		return nil, err
	}
	// The owners come first: the DHT's validators and put path consult them.
	d.Owners, err = naming.NewOwners(r.Datastore, cfg, d.Log, reg)
	if err != nil {
		return nil, err
	}
	d.Node, err = node.New(node.Options{
		Config: cfg, Key: r.NodeKey, Datastore: r.Unsynced, Logger: d.Log, Registerer: reg,
		Validators: d.Owners.Validators(), StorePolicy: d.storePolicy, ShapeRecord: d.shapeRecord, HostOptions: opts.Network.hostOptions(),
	})
	if err != nil {
		return nil, err
	}
	if err := d.startNames(reg); err != nil {
		return nil, err
	}
	// The dashboard before the roles: a role must not hold its port. It
	// shows no data before the control API, started after the roles,
	// hands out a code.
	if err := d.startDashboard(d.registry); err != nil {
		return nil, err
	}
	if opts.StartRoles != nil {
		if d.Roles, err = opts.StartRoles(d); err != nil {
			return nil, err
		}
	}
	if err := d.startAPI(opts.Network); err != nil {
		return nil, err
	}
	go d.bootstrap()
	if opts.Ready != nil {
		fmt.Fprintf(opts.Ready, "avnode ready: peer %s listening on %s\n", d.Node.Host.ID(), strings.Join(d.Node.Addrs(), " "))
	}
	d.Log.Info("ready", "peer", d.Node.Host.ID(), "addrs", d.Node.Addrs(), "repo", r.Dir)
	return d, nil
}

func (d *Daemon) startNames(reg prometheus.Registerer) error {
	keys, err := keystore.Open(d.Repo.Path(repo.KeystoreDir))
	if err != nil {
		return err
	}
	d.Names, err = naming.New(naming.Options{
		Host: d.Node.Host, DHT: d.Node.DHT, Values: d.Node.Values, Datastore: d.Repo.Datastore, Owners: d.Owners, Keys: keys,
		NodeKey: d.Repo.NodeKey, Config: d.Config, Logger: d.Log, Metrics: reg,
		Policy: namingPolicy{p: d.Policy, host: d.Node.Host},
	})
	if err != nil {
		return err
	}
	d.names.Store(d.Names)
	d.Names.Start()
	// Lives as long as the node: a zone stored after Names.Close is dropped.
	d.Node.WatchRecords(func(r node.RecordStored) { d.Names.NoteStored(r.Key, r.Value) })
	if err := d.startHosting(reg); err != nil {
		return err
	}
	if err := naming.GuardNameTopics(d.Node, d.Names, d.Log, reg); err != nil {
		d.Log.Error("validate the names' pub/sub topics", "err", err)
	}
	return nil
}

func (n *Network) hostOptions() []libp2p.Option {
	if n == nil {
		return nil
	}
	return n.Host
}

// Registerer is where the node's metrics go (nil when metrics are off).
func (d *Daemon) Registerer() prometheus.Registerer { return d.registerer }

func (d *Daemon) startHosting(reg prometheus.Registerer) error {
	blocks, err := content.OpenBlockstore(d.Repo.Path(repo.BlocksDir))
	if err != nil {
		return err
	}
	d.Hosting = hosting.New(hosting.Options{
		Host: d.Node.Host, DHT: d.Node.DHT, Names: d.Names, Blocks: blocks,
		Pins: content.NewPins(d.Repo.Datastore), DHTPrefix: d.Config.DHT.ProtocolPrefix,
		CacheMaxMB: d.Config.Content.CacheMaxMB, FetchSources: d.Config.Content.FetchSources,
		OrderSources: d.orderSources, Private: !d.Config.Content.Serve, Logger: d.Log,
		MaxFetchMB: d.Config.Content.MaxFetchMB,
		Server: exchange.ServerOptions{PeerRequests: d.Config.Content.ServePeerRequests,
			PeerBytes: int64(d.Config.Content.ServePeerMB) << 20, Registerer: reg},
	})
	return nil
}

func (d *Daemon) bootstrap() {
	if len(d.Config.Bootstrap) == 0 {
		d.Log.Info("no bootstrap peers configured: waiting for others to connect")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := d.Node
	if n == nil {
		return
	}
	connected := n.Bootstrap(ctx)
	d.Log.Info("bootstrap done", "connected", connected, "of", len(d.Config.Bootstrap))
}

// newLogger writes at level, which a config reload can change.
func newLogger(cfg *config.Config, out io.Writer, level *slog.LevelVar) *slog.Logger {
	if out == nil {
		out = os.Stderr
	}
	level.UnmarshalText([]byte(cfg.Log.Level)) // validated with the config
	hopts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(out, hopts))
	}
	return slog.New(slog.NewTextHandler(out, hopts))
}

// routeLibp2pLogs sends go-libp2p's logs through the node's handler, at
// error level unless the node is debugging: its warnings are mostly about
// peers, not about this node. It must run before libp2p's first log line.
func routeLibp2pLogs(log *slog.Logger, cfg *config.Config) {
	level := slog.LevelError
	if cfg.Log.Level == "debug" {
		level = slog.LevelDebug
	}
	gologshim.SetDefaultHandler(levelHandler{Handler: log.Handler(), min: level})
}

// levelHandler raises a handler's threshold.
type levelHandler struct {
	slog.Handler
	min slog.Level
}

func (h levelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h levelHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return levelHandler{Handler: h.Handler.WithAttrs(attrs), min: h.min}
}

func (h levelHandler) WithGroup(name string) slog.Handler {
	return levelHandler{Handler: h.Handler.WithGroup(name), min: h.min}
}

// startMetrics listens first, so a port in use fails before the node starts.
// The default port taken (a second node on the machine) is not a failure:
// the node takes the next free one and says so; a port the operator chose
// is theirs to change. The registry exists also when only the dashboard
// is on: its charts read it.
func (d *Daemon) startMetrics() (prometheus.Registerer, error) {
	want := d.Config.Metrics.Listen
	if want == "" && d.Config.Dashboard.Listen == "" {
		return nil, nil
	}
	d.registry = prometheus.NewRegistry()
	d.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if want == "" {
		return d.registry, nil
	}
	next := 0
	if want == shippedConfig().Metrics.Listen {
		next = metricsTries
	}
	ln, moved, err := sdk.ListenOrNext(want, next)
	if moved {
		d.Log.Warn("the default metrics port is taken (another node on this machine?); serving metrics on the next free port; set metrics.listen to choose",
			"wanted", want, "url", "http://"+ln.Addr().String()+"/metrics")
	}
	if err != nil {
		return nil, fmt.Errorf("metrics.listen %s: %w; choose another with --metrics.listen, or empty to turn metrics off", want, err)
	}
	d.metricsURL = "http://" + ln.Addr().String() + "/metrics"
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(d.registry, promhttp.HandlerOpts{}))
	d.metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go d.metrics.Serve(ln)
	d.Log.Info("metrics", "url", d.metricsURL)
	return d.registry, nil
}

// metricsTries is how many ports after the default one a node tries for
// its metrics.
const metricsTries = 16

func (d *Daemon) startAPI(sim *Network) error {
	d.api = api.NewServer(d.Log)
	d.registerHandlers(d.api)
	if d.registerer != nil {
		calls := prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "avnode_api_call_duration_seconds",
			Help:    "Time the daemon spent on each control API call, by call (method and path pattern).",
			Buckets: prometheus.ExponentialBuckets(50e-6, 4, 12), // 50 µs to about 4 min
		}, []string{"call"})
		d.registerer.MustRegister(calls)
		d.api.OnCall(func(call string, took time.Duration) { calls.WithLabelValues(call).Observe(took.Seconds()) })
	}
	socket := d.Repo.Path(repo.SocketFile)
	listen := d.api.Listen
	if sim != nil {
		listen = func(path string) error { return d.api.ListenOn(sim.API, path) }
	}
	if err := listen(socket); err != nil {
		return err
	}
	go func() {
		if err := d.api.Serve(); err != nil {
			d.Log.Error("control API stopped", "err", err)
		}
	}()
	return nil
}

// Stop shuts down in reverse order of start: API (socket removed), node
// (DHT closed), metrics, then the repo (datastore flushed, lock released).
func (d *Daemon) Stop() error {
	err := d.shutdown()
	if err != nil {
		d.Log.Warn("shutdown", "err", err)
	} else {
		d.Log.Info("stopped cleanly")
	}
	return err
}

func (d *Daemon) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	var errs []error
	if d.dashboard != nil {
		errs = append(errs, d.dashboard.Close(ctx))
	}
	d.copiesSeen.close()
	if d.api != nil {
		errs = append(errs, d.api.Shutdown(ctx))
	}
	if d.Roles != nil {
		d.Roles.Close()
	}
	if d.Hosting != nil {
		d.Hosting.Close()
	}
	if d.Names != nil {
		d.Names.Close()
	}
	if d.Node != nil {
		errs = append(errs, d.Node.Close())
	}
	d.Policy.Close()
	if d.metrics != nil {
		errs = append(errs, d.metrics.Shutdown(ctx))
	}
	if d.Repo != nil {
		errs = append(errs, d.Repo.Close())
	}
	return errors.Join(errs...)
}
