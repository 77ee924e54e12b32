//go:build unix

package sdk

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/avnode/avnode/sdk/internal/wait"
	"github.com/avnode/avnode/sdk/pluginpb"
)

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// testRoleBinary builds testdata/testrole once per test run, under the race
// detector when the tests run under it, so the SDK's serving code is checked too.
func testRoleBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "avnode-sdk-test-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "avnode-testrole")
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "./testdata/testrole")...)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./testdata/testrole: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// envWithout is the test's environment minus the handshake cookie, as in a
// shell where someone runs the plugin by hand.
func envWithout() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, Handshake.MagicCookieKey+"=") {
			env = append(env, kv)
		}
	}
	return env
}

// pluginEnv is what go-plugin's client gives a plugin it starts.
func pluginEnv() []string {
	return append(envWithout(),
		Handshake.MagicCookieKey+"="+Handshake.MagicCookieValue,
		"PLUGIN_MIN_PORT=10000", "PLUGIN_MAX_PORT=25000",
		"PLUGIN_PROTOCOL_VERSIONS="+strconv.Itoa(int(Handshake.ProtocolVersion)),
		"GORACE=halt_on_error=1 atexit_sleep_ms=0")
}

func TestDescribeSubcommand(t *testing.T) {
	bin := testRoleBinary(t)
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "describe")
	cmd.Env = envWithout()
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("describe: %v; stderr: %s", err, stderr.String())
	}
	var got struct {
		Name            string   `json:"name"`
		Version         string   `json:"version"`
		Summary         string   `json:"summary"`
		Capabilities    []string `json:"capabilities"`
		ConfigSchema    string   `json:"config_schema"`
		Permissions     []string `json:"permissions"`
		ProtocolVersion int      `json:"protocol_version"`
	}
	dec := json.NewDecoder(&stdout)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("describe printed no JSON the node can read: %v", err)
	}
	if dec.More() {
		t.Error("describe printed more than one JSON value")
	}
	if got.Name != "testrole" || got.Version != "1.2.3" || got.Summary != "exercises the SDK in its tests" ||
		strings.Join(got.Capabilities, ",") != "test,events" || got.ConfigSchema != `{"type":"object"}` {
		t.Errorf("describe = %+v", got)
	}
	if got.ProtocolVersion != ProtocolVersion {
		t.Errorf("protocol_version = %d, want %d", got.ProtocolVersion, ProtocolVersion)
	}
	if got.Permissions == nil || len(got.Permissions) != 0 {
		t.Errorf("permissions = %#v; a role that asks for none prints []", got.Permissions)
	}
	if stderr.Len() != 0 {
		t.Errorf("describe wrote to stderr: %q", stderr.String())
	}
}

func TestRunByHandExplainsAndExits1(t *testing.T) {
	bin := testRoleBinary(t)
	for _, args := range [][]string{nil, {"serve"}} {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(bin, args...)
		cmd.Env = envWithout()
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Fatalf("args %q: err = %v, want exit status 1", args, err)
		}
		if stdout.Len() != 0 {
			t.Errorf("args %q: stdout = %q, want nothing", args, stdout.String())
		}
		msg := stderr.String()
		if strings.Count(msg, "\n") != 1 || !strings.Contains(msg, "this is an avnode role plugin") ||
			!strings.Contains(msg, "the node starts it") || !strings.Contains(msg, "avnode-testrole describe") {
			t.Errorf("args %q: stderr = %q, want our one-line explanation", args, msg)
		}
	}
}

// startPlugin starts the test role as the node does, through go-plugin's
// client, and serves f as its host API.
func startPlugin(t *testing.T, f *fakeNode) (*plugin.Client, *RoleClient, uint32, *syncBuffer) {
	t.Helper()
	bin := testRoleBinary(t)
	stderr := &syncBuffer{}
	cmd := exec.Command(bin)
	cmd.Env = pluginEnv()
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  Handshake,
		Plugins:          plugin.PluginSet{PluginKey: &RolePlugin{}},
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           hclog.NewNullLogger(),
		Stderr:           stderr,
		StartTimeout:     30 * time.Second,
	})
	t.Cleanup(func() {
		client.Kill()
		if strings.Contains(stderr.String(), "DATA RACE") {
			t.Errorf("the plugin has a data race:\n%s", stderr)
		}
	})
	rpc, err := client.Client()
	if err != nil {
		t.Fatalf("start plugin: %v; stderr: %s", err, stderr)
	}
	raw, err := rpc.Dispense(PluginKey)
	if err != nil {
		t.Fatal(err)
	}
	rc := raw.(*RoleClient)
	id := rc.Broker.NextId()
	go rc.Broker.AcceptAndServe(id, newHostServer(f))
	return client, rc, id, stderr
}

func TestPluginLifecycle(t *testing.T) {
	f := newFakeNode()
	client, rc, id, stderr := startPlugin(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	desc, err := rc.Describe(ctx, &pluginpb.DescribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if desc.GetName() != "testrole" || desc.GetVersion() != "1.2.3" || desc.GetProtocolVersion() != ProtocolVersion ||
		desc.GetConfigSchema() != `{"type":"object"}` || len(desc.GetCapabilities()) != 2 {
		t.Errorf("Describe = %v", desc)
	}

	p, err := rc.ValidateConfig(ctx, &pluginpb.ConfigRequest{ConfigJson: []byte(`{"fail_validate": true, "warn": true}`)})
	if err != nil {
		t.Fatal(err)
	}
	diags := DiagnosticsFromProto(p)
	if len(diags) != 2 || !diags.HasError() || diags[0].Attribute != "fail_validate" || diags[0].Detail != "set it to false" ||
		diags[1].Severity != SeverityWarning {
		t.Errorf("ValidateConfig = %+v", diags)
	}
	for _, cfg := range []string{"", "null", "{}"} {
		p, err := rc.ValidateConfig(ctx, &pluginpb.ConfigRequest{ConfigJson: []byte(cfg)})
		if err != nil || len(p.GetDiagnostics()) != 0 {
			t.Errorf("ValidateConfig(%q) = %v, %v; want no diagnostics", cfg, p, err)
		}
	}

	p, err = rc.Start(ctx, &pluginpb.StartRequest{ConfigJson: []byte(`{"subscribe": true}`), HostBrokerId: id})
	if err != nil || len(p.GetDiagnostics()) != 0 {
		t.Fatalf("Start = %v, %v; stderr: %s", p, err, stderr)
	}
	if !f.called("Pin bafytest testrole") {
		t.Error("the role's Pin did not reach the host")
	}
	e := f.logged("started")
	if e == nil {
		t.Fatal("the role's log did not reach the host")
	}
	if e.GetLevel() != "info" || e.GetAttrs()["role_attr"] != "x" || e.GetAttrs()["g.not_found"] != "true" ||
		e.GetAttrs()["g.unimplemented"] != "true" ||
		!strings.Contains(e.GetAttrs()["g.get_error"], `host GetRecord "/missing": NotFound: no record under /missing`) {
		t.Errorf("log record = %v", e)
	}
	if m := f.metric("up"); m == nil || m.GetValue() != 1 || m.GetKind() != pluginpb.MetricSample_KIND_GAUGE {
		t.Errorf("gauge = %v", m)
	}
	if m := f.metric("starts"); m == nil || m.GetKind() != pluginpb.MetricSample_KIND_COUNTER_ADD {
		t.Errorf("counter = %v", m)
	}
	f.events <- &pluginpb.Event{Kind: "test.kind", Attrs: map[string]string{"n": "7"}}
	wait.Eventually(t, 5*time.Second, "event seen by the role", func() error {
		if v, ok := f.recordValue("/seen/test.kind"); !ok || v != "7" {
			return fmt.Errorf("the role stored %q (%v)", v, ok)
		}
		return nil
	})

	p, err = rc.Start(ctx, &pluginpb.StartRequest{ConfigJson: []byte(`{}`), HostBrokerId: id})
	if err != nil || !DiagnosticsFromProto(p).HasError() || !strings.Contains(p.GetDiagnostics()[0].GetSummary(), "already started") {
		t.Errorf("second Start = %v, %v; want an error diagnostic", p, err)
	}

	p, err = rc.Stop(ctx, &pluginpb.StopRequest{})
	if err != nil || len(p.GetDiagnostics()) != 0 {
		t.Fatalf("Stop = %v, %v", p, err)
	}
	if e := f.logged("stopping"); e == nil || e.GetAttrs()["deadline_set"] != "true" {
		t.Errorf("stop log = %v; Stop should log through the host while it is still valid", e)
	}
	if p, err := rc.Stop(ctx, &pluginpb.StopRequest{}); err != nil || len(p.GetDiagnostics()) != 0 {
		t.Errorf("second Stop = %v, %v; want nothing to do", p, err)
	}

	// A panic fails the call, not the plugin.
	id2 := rc.Broker.NextId()
	go rc.Broker.AcceptAndServe(id2, newHostServer(f))
	p, err = rc.Start(ctx, &pluginpb.StartRequest{ConfigJson: []byte(`{"panic_start": true}`), HostBrokerId: id2})
	if err != nil || !DiagnosticsFromProto(p).HasError() || !strings.Contains(p.GetDiagnostics()[0].GetSummary(), "panicked in Start: asked to panic") {
		t.Errorf("Start that panics = %v, %v", p, err)
	}
	if _, err := rc.Describe(ctx, &pluginpb.DescribeRequest{}); err != nil {
		t.Errorf("the plugin died after a panic in Start: %v", err)
	}
	if !strings.Contains(stderr.String(), "panic in Start") {
		t.Errorf("the panic's stack is not on stderr: %s", stderr)
	}

	// A broker ID nobody serves: Start gives up with a diagnostic.
	start := time.Now()
	p, err = rc.Start(ctx, &pluginpb.StartRequest{ConfigJson: []byte(`{}`), HostBrokerId: 999})
	if err != nil || !DiagnosticsFromProto(p).HasError() || !strings.Contains(p.GetDiagnostics()[0].GetSummary(), "cannot reach the node's host API") {
		t.Errorf("Start with an unserved broker ID = %v, %v", p, err)
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("giving up took %s", d)
	}

	client.Kill()
	if !client.Exited() {
		t.Error("plugin still running after Kill")
	}
}

func TestSignalStopsTheRole(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			f := newFakeNode()
			client, rc, id, stderr := startPlugin(t, f)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if p, err := rc.Start(ctx, &pluginpb.StartRequest{ConfigJson: []byte(`{}`), HostBrokerId: id}); err != nil || len(p.GetDiagnostics()) != 0 {
				t.Fatalf("Start = %v, %v", p, err)
			}
			if err := syscall.Kill(client.ReattachConfig().Pid, sig); err != nil {
				t.Fatal(err)
			}
			wait.Eventually(t, 5*time.Second, "Stop called on "+sig.String(), func() error { return loggedErr(f, "stopping") })
			wait.Eventually(t, 5*time.Second, "plugin exited on "+sig.String(), exitedErr(client))
			if s := stderr.String(); strings.Contains(s, "did not stop") {
				t.Errorf("stderr: %s", s)
			}
		})
	}
}

func TestSignalWithAHangingStopStillExits(t *testing.T) {
	t.Parallel()
	f := newFakeNode()
	client, rc, id, stderr := startPlugin(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if p, err := rc.Start(ctx, &pluginpb.StartRequest{ConfigJson: []byte(`{"hang_stop": true}`), HostBrokerId: id}); err != nil || len(p.GetDiagnostics()) != 0 {
		t.Fatalf("Start = %v, %v", p, err)
	}
	start := time.Now()
	if err := syscall.Kill(client.ReattachConfig().Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wait.Eventually(t, stopTimeout+2*time.Second, "plugin exited although Stop hangs", exitedErr(client))
	if d := time.Since(start); d < stopTimeout-500*time.Millisecond {
		t.Errorf("exited after %s; Stop should have had %s", d, stopTimeout)
	}
	if !strings.Contains(stderr.String(), "did not stop within 5s") {
		t.Errorf("stderr does not say why: %s", stderr)
	}
}

// The node is killed with kill -9: the plugin must be gone within 5 s.
// An intermediate shell plays the node; the test process becomes a
// subreaper so that the orphan is handed to it and can be reaped and its
// exit status read (a zombie would still answer kill(pid, 0)).
func TestPluginDiesWithItsParent(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the kill -9 test uses Linux's subreaper and /proc")
	}
	bin := testRoleBinary(t)
	dir := t.TempDir()
	stdoutFile := filepath.Join(dir, "stdout")
	subreaper := setChildSubreaper(t)

	node := exec.Command("sh", "-c", `"$0" >"$1" 2>"$2" & echo $!; exec sleep 60`, bin, stdoutFile, filepath.Join(dir, "stderr"))
	node.Env = pluginEnv()
	out, err := node.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Process.Kill(); _ = node.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("plugin pid %q: %v", line, err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL); reap(pid) })

	// Up and past the handshake: the handshake line is on its stdout.
	wait.Eventually(t, 20*time.Second, "plugin handshake", func() error {
		if b, _ := os.ReadFile(stdoutFile); !strings.HasPrefix(string(b), "1|1|") {
			return fmt.Errorf("stdout is %q", b)
		}
		return nil
	})

	if err := node.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = node.Wait()
	killed := time.Now()

	var gone bool
	var how string
	for time.Since(killed) < 5*time.Second {
		gone, how = exited(pid, subreaper)
		if gone {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !gone {
		stderrOut, _ := os.ReadFile(filepath.Join(dir, "stderr"))
		t.Fatalf("plugin %d still running 5 s after its parent was killed; stderr:\n%s", pid, stderrOut)
	}
	t.Logf("plugin gone %s after its parent: %s", time.Since(killed).Round(time.Millisecond), how)
	if subreaper && how != "exit status 0" {
		t.Errorf("plugin ended with %s; want a clean exit through the SDK's stop", how)
	}
}

// exited reports whether pid has ended: reaped by us (a subreaper), or, when
// it is not our child, absent from /proc or a zombie there.
func exited(pid int, subreaper bool) (bool, string) {
	if subreaper {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		if err == nil && got == pid {
			if ws.Signaled() {
				return true, "signal " + ws.Signal().String()
			}
			return true, fmt.Sprintf("exit status %d", ws.ExitStatus())
		}
		if err == nil {
			return false, ""
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true, "gone from /proc"
	}
	if i := bytes.LastIndexByte(stat, ')'); i > 0 && bytes.HasPrefix(stat[i:], []byte(") Z")) {
		return true, "zombie"
	}
	return false, ""
}

func reap(pid int) {
	var ws syscall.WaitStatus
	_, _ = syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
}
