package plugins

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/avnode/avnode/core/api"
	"github.com/avnode/avnode/core/backoff"
	"github.com/avnode/avnode/sdk"
	"github.com/avnode/avnode/sdk/pluginpb"
)

const (
	exitPoll     = 500 * time.Millisecond // a dead plugin sends no callback (go-plugin #92): poll
	stopTimeout  = 5 * time.Second
	startTimeout = 15 * time.Second
	firstBackoff = 250 * time.Millisecond
	maxBackoff   = 30 * time.Second
)

// supervisor keeps one role's plugin running.
type supervisor struct {
	m      *Manager
	role   string
	config json.RawMessage
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	logs *roleLog // shared by the role's stderr and its Log calls, across restarts

	mu       sync.Mutex
	st       api.RoleStatus
	client   *sdk.RoleClient // while running
	restarts []time.Time     // recent restarts, for the rate limit
}

func newSupervisor(m *Manager, role string, config json.RawMessage) *supervisor {
	ctx, cancel := context.WithCancel(context.Background())
	return &supervisor{m: m, role: role, config: config, ctx: ctx, cancel: cancel, done: make(chan struct{}),
		logs: m.roleLogFor(role), st: api.RoleStatus{Name: role, State: "starting"}}
}

func (s *supervisor) set(f func(*api.RoleStatus)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.st)
}

func (s *supervisor) status() api.RoleStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}

// running returns the role's client while the plugin runs, else nil.
func (s *supervisor) running() *sdk.RoleClient {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.client
}

func (s *supervisor) active() bool {
	st := s.status().State
	return st != "failed" && st != "stopped" && st != "not installed"
}

func (s *supervisor) stop() {
	s.cancel()
	<-s.done
}

// run starts the plugin and restarts it when it dies, until stopped, failed
// for good, or not installed.
func (s *supervisor) run() {
	defer close(s.done)
	delay := backoff.New(firstBackoff, maxBackoff)
	startFailures := 0
	for s.ctx.Err() == nil {
		up, err := s.runOnce()
		if s.ctx.Err() != nil {
			break
		}
		if errors.Is(err, ErrNotInstalled) {
			s.set(func(st *api.RoleStatus) { st.State, st.LastError = "not installed", err.Error() })
			s.m.log.Warn("role not installed", "role", s.role, "err", err)
			return
		}
		var permanent *permanentError
		if errors.As(err, &permanent) {
			s.set(func(st *api.RoleStatus) { st.State, st.LastError, st.PID = "failed", err.Error(), 0 })
			s.m.log.Error("role failed", "role", s.role, "err", err)
			return
		}
		// Backoff grows only while the plugin cannot come up; a plugin that
		// was running is restarted promptly, within the per-minute budget.
		if up > 0 {
			startFailures = 0
			delay.Reset()
		} else {
			startFailures++
		}
		if startFailures >= s.m.opts.MaxStartFailures {
			s.set(func(st *api.RoleStatus) {
				st.State, st.PID = "failed", 0
				st.LastError = fmt.Sprintf("crashed %d times in a row before it was up; last: %v", startFailures, err)
			})
			s.m.log.Error("role failed: keeps crashing at start", "role", s.role, "err", err)
			return
		}
		wait := s.nextRestart(delay.Current())
		s.set(func(st *api.RoleStatus) { st.State, st.LastError, st.PID = "backoff", errText(err), 0 })
		s.m.log.Warn("role plugin exited; restarting", "role", s.role, "err", err, "in", wait)
		select {
		case <-time.After(wait):
		case <-s.ctx.Done():
		}
		if up == 0 {
			delay.Grow()
		}
		s.set(func(st *api.RoleStatus) { st.Restarts++; st.State = "starting" })
	}
	s.set(func(st *api.RoleStatus) { st.State, st.PID = "stopped", 0 })
}

func errText(err error) string {
	if err == nil {
		return "exited"
	}
	return err.Error()
}

// nextRestart waits out the backoff, and longer if the per-minute budget of
// restarts is spent.
func (s *supervisor) nextRestart(backoff time.Duration) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	recent := s.restarts[:0]
	for _, t := range s.restarts {
		if now.Sub(t) < time.Minute {
			recent = append(recent, t)
		}
	}
	s.restarts = recent
	wait := backoff
	if limit := s.m.opts.MaxRestartsPerMinute; len(recent) >= limit {
		wait = max(wait, recent[len(recent)-limit].Add(time.Minute).Sub(now))
	}
	s.restarts = append(s.restarts, now.Add(wait))
	return wait
}

// permanentError is a failure that restarting cannot fix: a checksum
// mismatch, a protocol version mismatch, a refused config.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return &permanentError{err: err} }

// runOnce runs the plugin until it exits or the role is stopped. It returns
// how long the plugin was up (0 if it never came up) and why it ended.
func (s *supervisor) runOnce() (time.Duration, error) {
	img, err := s.m.loadImage(s.role)
	if errors.Is(err, ErrNotInstalled) {
		return 0, err
	}
	if err != nil {
		return 0, permanent(err)
	}
	defer img.close()
	dataDir, err := s.m.roleDataDir(s.role)
	if err != nil {
		return 0, permanent(err)
	}
	cmd, done, err := s.m.pluginCommand(img, s.role, dataDir)
	if err != nil {
		return 0, err
	}
	defer done()
	client := plugin.NewClient(s.clientConfig(cmd))
	defer client.Kill()
	role, err := s.connect(client)
	if err != nil {
		return 0, err
	}
	s.set(func(st *api.RoleStatus) { st.Path, st.Sandbox = img.path, s.m.sandbox })
	if err := s.start(role, dataDir); err != nil {
		return 0, err
	}
	started := time.Now()
	pid := 0
	if rc := client.ReattachConfig(); rc != nil {
		pid = rc.Pid
	}
	s.set(func(st *api.RoleStatus) { st.State, st.PID, st.LastError = "running", pid, "" })
	s.mu.Lock()
	s.client = role
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.client = nil
		s.mu.Unlock()
	}()
	s.m.log.Info("role running", "role", s.role, "pid", pid)
	for {
		select {
		case <-s.ctx.Done():
			s.stopPlugin(role)
			return time.Since(started), nil
		case <-time.After(exitPoll):
			if client.Exited() {
				return time.Since(started), fmt.Errorf("plugin process %d exited", pid)
			}
		}
	}
}

// clientConfig runs cmd, which execs the bytes the node checked: no
// SecureConfig, whose check reads the file again by its path.
func (s *supervisor) clientConfig(cmd *exec.Cmd) *plugin.ClientConfig {
	dieWithNode(cmd)
	limit := s.m.opts.Limits.MessageBytes
	return &plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		Plugins:          plugin.PluginSet{sdk.PluginKey: &sdk.RolePlugin{}},
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		StartTimeout:     startTimeout,
		Logger:           newHCLogger(s.logs),
		Stderr:           &lineLogger{log: s.logs},
		// Mutual TLS on the plugin's socket and every broker connection: a
		// socket file is reachable by any process of the node's user, other
		// plugins included, and would let one call the host API as another role.
		AutoMTLS: true,
		// A confined plugin gets only the environment pluginCommand chose.
		SkipHostEnv: s.m.opts.Sandbox.Enabled && sandboxAvailable,
		GRPCDialOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(limit), grpc.MaxCallSendMsgSize(limit))},
	}
}

// connect performs the handshake and checks the plugin's protocol version.
func (s *supervisor) connect(client *plugin.Client) (*sdk.RoleClient, error) {
	rpc, err := client.Client()
	if err != nil {
		if msg := strings.ToLower(err.Error()); strings.Contains(msg, "incompatible api version") || strings.Contains(msg, "protocol version") {
			return nil, permanent(fmt.Errorf("role %s: the plugin speaks another protocol version than this node (%d): %v; use a plugin built for this avnode", s.role, sdk.ProtocolVersion, err))
		}
		return nil, fmt.Errorf("role %s: start plugin: %w", s.role, err)
	}
	raw, err := rpc.Dispense(sdk.PluginKey)
	if err != nil {
		return nil, fmt.Errorf("role %s: %w", s.role, err)
	}
	role, ok := raw.(*sdk.RoleClient)
	if !ok {
		return nil, permanent(fmt.Errorf("role %s: the plugin is not an avnode role plugin", s.role))
	}
	return role, nil
}

// start describes, validates the config, serves the host API on the broker
// and starts the role.
func (s *supervisor) start(role *sdk.RoleClient, dataDir string) error {
	if err := s.validate(role); err != nil {
		return err
	}
	timeout := s.m.opts.Limits.CallTimeout
	brokerID := role.Broker.NextId()
	limits := s.m.opts.Limits
	go role.Broker.AcceptAndServe(brokerID, func(opts []grpc.ServerOption) *grpc.Server {
		opts = append(opts, s.m.guardFor(s.role).serverOptions()...)
		opts = append(opts, grpc.MaxRecvMsgSize(limits.MessageBytes), grpc.MaxSendMsgSize(limits.MessageBytes))
		srv := grpc.NewServer(opts...)
		pluginpb.RegisterHostServer(srv, s.m.hostFor(s.role, s.logs))
		return srv
	})
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	diags, err := role.Start(ctx, &pluginpb.StartRequest{ConfigJson: s.config, HostBrokerId: brokerID,
		NodePeerId: s.m.opts.PeerID, DataDir: dataDir})
	if err != nil {
		return s.m.callError(ctx, s.role, "start", err)
	}
	return diagnosticsError(s.m.log, s.role, "start", diags)
}

// validate describes the plugin, checks that it speaks this node's
// protocol, notes the grants it lacks, and has it check its config.
func (s *supervisor) validate(role *sdk.RoleClient) error {
	timeout := s.m.opts.Limits.CallTimeout
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	desc, err := role.Describe(ctx, &pluginpb.DescribeRequest{})
	if err != nil {
		return s.m.callError(ctx, s.role, "describe", err)
	}
	if desc.GetProtocolVersion() != sdk.ProtocolVersion {
		return permanent(fmt.Errorf("role %s: the plugin speaks protocol version %d, this node %d; use a plugin built for this avnode",
			s.role, desc.GetProtocolVersion(), sdk.ProtocolVersion))
	}
	missing := s.m.missingGrants(s.role, desc.GetPermissions())
	if len(missing) > 0 {
		s.m.log.Warn("role asks for permissions it was not granted; those calls will be refused",
			"role", s.role, "missing", missing, "grant", "avnode plugins grant "+s.role+" PERMISSION…")
	}
	s.set(func(st *api.RoleStatus) {
		st.Version, st.Capabilities, st.MissingGrants = desc.GetVersion(), desc.GetCapabilities(), missing
	})
	ctx, cancel = context.WithTimeout(s.ctx, timeout)
	defer cancel()
	diags, err := role.ValidateConfig(ctx, &pluginpb.ConfigRequest{ConfigJson: s.config})
	if err != nil {
		return s.m.callError(ctx, s.role, "validate config", err)
	}
	if err := diagnosticsError(s.m.log, s.role, "config", diags); err != nil {
		return permanent(err)
	}
	return nil
}

// validateOnly runs the role's plugin to check its config, and stops it.
func (s *supervisor) validateOnly() error {
	img, err := s.m.loadImage(s.role)
	if err != nil {
		return err
	}
	defer img.close()
	cmd, done, err := s.m.pluginCommand(img, s.role, "")
	if err != nil {
		return err
	}
	defer done()
	client := plugin.NewClient(s.clientConfig(cmd))
	defer client.Kill()
	role, err := s.connect(client)
	if err != nil {
		return err
	}
	return s.validate(role)
}

func (s *supervisor) stopPlugin(role *sdk.RoleClient) {
	// A stop waits no longer than stopTimeout: the node's shutdown waits on it.
	ctx, cancel := context.WithTimeout(context.Background(), min(stopTimeout, s.m.opts.Limits.CallTimeout))
	defer cancel()
	if diags, err := role.Stop(ctx, &pluginpb.StopRequest{}); err != nil {
		s.m.log.Warn("role stop", "role", s.role, "err", s.m.callError(ctx, s.role, "stop", err))
	} else if err := diagnosticsError(s.m.log, s.role, "stop", diags); err != nil {
		s.m.log.Warn("role stop", "role", s.role, "err", err)
	}
}

// diagnosticsError turns a role's error diagnostics into one error and logs
// its warnings, with the role and phase, on log.
func diagnosticsError(log *slog.Logger, role, phase string, d *pluginpb.Diagnostics) error {
	diags := sdk.DiagnosticsFromProto(d)
	for _, diag := range diags {
		if !diag.IsError() {
			log.Warn("role warning", "role", role, "phase", phase, "warning", diag.String())
		}
	}
	if err := diags.Err(); err != nil {
		return fmt.Errorf("role %s: %s: %w", role, phase, err)
	}
	return nil
}
