// Command avnode-evil is a hostile role plugin for the node's tests. It asks
// for no permission, then tries, on `avnode roles call evil ...`, what a role
// with bad intent would: change zones it does not own, authorise a
// satellite, claim names with keys it was not given, unpin content, flood
// the node's log, and never answer. Each try answers what the node said.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"google.golang.org/grpc/status"

	"github.com/avnode/avnode/sdk"
)

type evil struct{ host sdk.Host }

var (
	_ sdk.Role      = (*evil)(nil)
	_ sdk.Commander = (*evil)(nil)
)

func (e *evil) Describe() sdk.Description {
	return sdk.Description{Name: "evil", Version: "0.0.1", Summary: "a hostile role, for tests",
		ConfigSchema: `{"type":"object"}`, Permissions: []string{}}
}

func (e *evil) ValidateConfig(json.RawMessage) sdk.Diagnostics { return nil }

func (e *evil) Start(_ context.Context, _ json.RawMessage, host sdk.Host) sdk.Diagnostics {
	e.host = host
	return nil
}

func (e *evil) Stop(context.Context) sdk.Diagnostics { return nil }

// outcome is what the node answered to one try.
type outcome struct {
	OK    bool   `json:"ok"`
	Code  string `json:"code"` // the gRPC code: PermissionDenied, OK, ...
	Error string `json:"error,omitempty"`
}

func outcomeOf(err error) outcome {
	if err == nil {
		return outcome{OK: true, Code: "OK"}
	}
	return outcome{Code: status.Code(err).String(), Error: err.Error()}
}

// Command: try ACTION ARGS..., spam LINES, hang.
func (e *evil) Command(ctx context.Context, name string, args []string) (any, sdk.Diagnostics) {
	switch name {
	case "hang":
		select {} // never answers, whatever the node's deadline says
	case "spam":
		// Half through the process's stderr (the log package), half through
		// the host's Log call: the two ways a role's lines reach the node.
		// It floods in the background, answering at once.
		n, _ := strconv.Atoi(args[0])
		line := strings.Repeat("x", 200)
		go func() {
			for i := range n {
				if i%2 == 0 {
					log.Printf("spam-line %d %s", i, line)
				} else {
					e.host.Logger().Info(fmt.Sprintf("spam-line %d %s", i, line))
				}
			}
			log.Printf("spam-done")
		}()
		return outcome{OK: true}, nil
	case "try":
		return outcomeOf(e.try(ctx, args[0], args[1:])), nil
	case "limits": // the rlimits it runs under
		var files, space syscall.Rlimit
		syscall.Getrlimit(syscall.RLIMIT_NOFILE, &files)
		syscall.Getrlimit(syscall.RLIMIT_AS, &space)
		return map[string]uint64{"open_files": files.Cur, "address_space": space.Cur}, nil
	}
	return nil, sdk.Diagnostics{sdk.Errorf("evil takes: try ACTION ARGS..., spam LINES, hang, limits")}
}

func (e *evil) try(ctx context.Context, action string, a []string) error {
	h := e.host
	switch action {
	case "resolve":
		_, err := h.Resolve(ctx, a[0])
		return err
	case "set-txt": // NAME VALUE
		_, err := h.SetZoneRecord(ctx, a[0], "TXT", "", a[1])
		return err
	case "add-sat": // NAME PEER: authorise a satellite of its choice
		_, err := h.SetZoneRecord(ctx, a[0], "SAT", "", a[1])
		return err
	case "claim": // NAME KEY
		_, err := h.Claim(ctx, a[0], a[1])
		return err
	case "unpin":
		return h.Unpin(ctx, a[0])
	case "pin":
		return h.Pin(ctx, a[0], "mine now")
	case "fetch":
		_, err := h.Fetch(ctx, a[0])
		return err
	case "config": // KEY
		var v any
		return h.NodeConfig(ctx, a[0], &v)
	case "put-record": // KEY VALUE
		return h.PutRecord(ctx, a[0], []byte(a[1]))
	case "publish": // TOPIC
		return h.Publish(ctx, a[0], []byte("evil"))
	case "subscribe": // every event kind
		_, err := h.Subscribe(ctx)
		return err
	case "call-role": // ROLE COMMAND
		_, err := h.CallRole(ctx, a[0], a[1])
		return err
	case "decide": // HOOK
		_, err := h.Decide(ctx, a[0], map[string]string{})
		return err
	case "relay":
		_, err := h.RelayStatus(ctx)
		return err
	case "service":
		return h.SetService(ctx, "gateway", "http://evil.example")
	case "read": // PATH: a file of the node's, "" inside the repo (found from the data folder)
		_, err := os.ReadFile(e.inRepo(a[0]))
		return err
	case "write": // PATH: a file it means to leave in the repo
		return os.WriteFile(e.inRepo(a[0]), []byte("evil"), 0o600)
	case "api": // PATH: the node's control API, as the operator's CLI calls it
		return e.callAPI(ctx, a[0])
	case "env": // NAME: read a variable of the node's environment
		if v, ok := os.LookupEnv(a[0]); ok {
			return fmt.Errorf("leaked: %s=%s", a[0], v) // reported as a failure the test looks for
		}
		return nil
	case "kill-node":
		return syscall.Kill(os.Getppid(), syscall.SIGKILL)
	}
	return fmt.Errorf("unknown action %q", action)
}

// inRepo finds a path of the node's repo from the role's data folder,
// <repo>/roles/evil: a relative path is taken inside the repo.
func (e *evil) inRepo(path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(e.host.DataDir(), "..", "..", path)
}

// callAPI calls the control API on the repo's socket, with no token.
func (e *evil) callAPI(ctx context.Context, path string) error {
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", e.inRepo("api.sock"))
	}}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://avnode"+path, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("control API answered %s: %s", resp.Status, body)
	}
	return nil
}

func main() { sdk.Serve(&evil{}) }
