package daemon

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/avnode/avnode/core/api"
	"github.com/avnode/avnode/core/fault"
	"github.com/avnode/avnode/core/repo"
)

// fakeRoles stands in for the plugin host at the daemon's one seam.
type fakeRoles struct {
	closed bool
}

func (f *fakeRoles) RegisterAPI(s *api.Server) {
	s.Handle("GET /v1/roles", func(context.Context, api.Request) (any, error) {
		return []api.RoleStatus{{Name: "fake", State: "running"}}, nil
	})
}
func (f *fakeRoles) Services() map[string]string {
	return map[string]string{"gateway": "http://gw.test/"}
}
func (f *fakeRoles) Statuses() []api.RoleStatus {
	return []api.RoleStatus{{Name: "fake", State: "running"}}
}
func (f *fakeRoles) WithCapability(string) []string { return nil }
func (f *fakeRoles) Close()                         { f.closed = true }
func (f *fakeRoles) StartRole(string)               {}
func (f *fakeRoles) StopRole(string) error          { return nil }
func (f *fakeRoles) Command(context.Context, string, string, []string) (json.RawMessage, error) {
	return nil, nil
}

// startTestDaemon runs a daemon on loopback in a fresh repo, without
// metrics, and stops it when the test ends.
func startTestDaemon(t *testing.T, startRoles func(*Daemon) (Roles, error)) (*Daemon, *api.Client) {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "test.yaml")
	if err := os.WriteFile(cfg, []byte("listen: [/ip4/127.0.0.1/tcp/0]\nmetrics: {listen: \"\"}\nlog: {level: error}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := Start(Options{RepoDir: filepath.Join(dir, "repo"), ConfigFile: cfg, Environ: []string{}, LogOutput: io.Discard, StartRoles: startRoles})
	if err != nil {
		t.Fatal(err)
	}
	return d, api.NewClient(d.Repo.Dir, repo.SocketFile)
}

// The daemon starts the roles it is handed, serves their calls and
// services, and closes them when it stops: the composition root's seam.
func TestDaemonRunsTheRolesItIsHanded(t *testing.T) {
	roles := &fakeRoles{}
	var handed *Daemon
	d, client := startTestDaemon(t, func(d *Daemon) (Roles, error) { handed = d; return roles, nil })
	if handed != d || handed.RoleNode() == nil {
		t.Fatal("StartRoles was not handed the running daemon")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var info api.Info
	if err := client.Call(ctx, "GET", "/v1/id", nil, nil, &info); err != nil {
		t.Fatal(err)
	}
	if info.Gateway != "http://gw.test/" {
		t.Errorf("id shows gateway %q, want the roles' service", info.Gateway)
	}
	var statuses []api.RoleStatus
	if err := client.Call(ctx, "GET", "/v1/roles", nil, nil, &statuses); err != nil || len(statuses) != 1 || statuses[0].Name != "fake" {
		t.Errorf("roles = %+v, %v; want the roles' own answer", statuses, err)
	}
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	if !roles.closed {
		t.Error("the roles were not closed when the daemon stopped")
	}
}

// A node without roles still answers; its roles calls say there are none
// to call, and a record the DHT would refuse is refused before it is sent,
// with its kind, for the API and for roles alike.
func TestDaemonWithoutRoles(t *testing.T) {
	d, client := startTestDaemon(t, nil)
	defer d.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var info api.Info
	if err := client.Call(ctx, "GET", "/v1/id", nil, nil, &info); err != nil || info.PeerID == "" {
		t.Fatalf("id = %+v, %v", info, err)
	}
	err := d.RoleNode().PutRecord(ctx, "/avtr-zone/forged.avtr", []byte("not a zone"))
	if fault.KindOf(err) != fault.Refused {
		t.Errorf("a forged zone from a role: %v (kind %q), want refused", err, fault.KindOf(err))
	}
	err = client.Call(ctx, "POST", "/v1/routing/put", map[string][]string{"key": {"/avtr-zone/forged.avtr"}}, nil, nil)
	if fault.KindOf(err) != fault.Refused {
		t.Errorf("a forged zone through the API: %v (kind %q), want refused", err, fault.KindOf(err))
	}
}
