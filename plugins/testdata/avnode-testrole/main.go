// Command avnode-testrole is a role plugin for the node's tests: it calls the
// host API as its config asks and reports what it saw in a file, rewritten
// whenever something new arrives.
package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/avnode/avnode/sdk"
)

type config struct {
	Report       string `json:"report"`         // file to write the report to
	Resolve      string `json:"resolve"`        // a name to resolve
	Fetch        string `json:"fetch"`          // a CID to fetch and pin
	CrashAtStart bool   `json:"crash_at_start"` // exit during Start

	EchoProtocol string `json:"echo_protocol"` // handle it: answer "echo:" + what was sent
	DialPeer     string `json:"dial_peer"`     // open echo_protocol to this peer, send dial_message
	DialMessage  string `json:"dial_message"`
	Topic        string `json:"topic"`   // subscribe to it
	Publish      string `json:"publish"` // and publish this on it every 200 ms
	Events       string `json:"events"`  // subscribe to this event kind
	Decide       string `json:"decide"`  // ask the policy this hook, with {"name": resolve}
}

type report struct {
	PID      int      `json:"pid"`
	Key      string   `json:"key,omitempty"`
	Pinned   string   `json:"pinned,omitempty"`
	Error    string   `json:"error,omitempty"`
	Protocol int      `json:"protocol"`
	Echoed   string   `json:"echoed,omitempty"`
	Served   []string `json:"served,omitempty"`   // peers whose echo streams it answered
	Messages []string `json:"messages,omitempty"` // "from data" of topic messages
	Events   []string `json:"events,omitempty"`   // the key attribute of events
	Verdict  string   `json:"verdict,omitempty"`
}

type testRole struct {
	cfg    config
	cancel context.CancelFunc

	mu  sync.Mutex
	rep report
}

func (r *testRole) Describe() sdk.Description {
	return sdk.Description{Name: "testrole", Version: "0.0.1", Summary: "calls the host API for tests",
		Capabilities: []string{"test"}, ConfigSchema: `{"type":"object"}`,
		Permissions: []string{"names.resolve", "content.fetch", "content.pin", "streams:*", "pubsub:*", "events:*", "policy.decide:*"}}
}

func (r *testRole) ValidateConfig(raw json.RawMessage) sdk.Diagnostics {
	if err := json.Unmarshal(raw, &r.cfg); err != nil {
		return sdk.Diagnostics{{Severity: sdk.SeverityError, Summary: "config is not valid", Detail: err.Error()}}
	}
	return nil
}

// update changes the report and writes it out.
func (r *testRole) update(f func(*report)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(&r.rep)
	if r.cfg.Report == "" {
		return
	}
	data, _ := json.Marshal(r.rep)
	os.WriteFile(r.cfg.Report+".tmp", data, 0o600)
	os.Rename(r.cfg.Report+".tmp", r.cfg.Report)
}

func (r *testRole) fail(err error) {
	r.update(func(rep *report) { rep.Error += err.Error() + "; " })
}

func (r *testRole) Start(ctx context.Context, raw json.RawMessage, host sdk.Host) sdk.Diagnostics {
	if r.cfg.CrashAtStart {
		os.Exit(3)
	}
	r.rep = report{PID: os.Getpid(), Protocol: sdk.ProtocolVersion}
	// The node may still be joining the network: retry for a while.
	if r.cfg.Resolve != "" {
		if res, err := retry(func() (sdk.Resolution, error) { return host.Resolve(ctx, r.cfg.Resolve) }); err != nil {
			r.fail(err)
		} else {
			r.rep.Key = res.Key
		}
	}
	if r.cfg.Fetch != "" {
		if _, err := retry(func() (sdk.Fetched, error) { return host.Fetch(ctx, "/cid/"+r.cfg.Fetch) }); err != nil {
			r.fail(err)
		} else if err := host.Pin(ctx, r.cfg.Fetch, "testrole"); err != nil {
			r.fail(err)
		} else {
			r.rep.Pinned = r.cfg.Fetch
		}
	}
	bg, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.startStreams(bg, host)
	r.startPubSub(bg, host)
	r.startEvents(bg, host)
	if r.cfg.Decide != "" {
		v, err := host.Decide(ctx, r.cfg.Decide, map[string]any{"name": r.cfg.Resolve})
		if err != nil {
			r.fail(err)
		} else {
			r.rep.Verdict = strconv.FormatBool(v.Decided) + " " + strconv.FormatBool(v.Allow) + " " + v.Reason
		}
	}
	host.Logger().Info("testrole started", "pid", strconv.Itoa(os.Getpid()))
	r.update(func(*report) {})
	return nil
}

func retry[T any](f func() (T, error)) (T, error) {
	var v T
	var err error
	for deadline := time.Now().Add(8 * time.Second); ; {
		if v, err = f(); err == nil || time.Now().After(deadline) {
			return v, err
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (r *testRole) startStreams(ctx context.Context, host sdk.Host) {
	if r.cfg.EchoProtocol == "" {
		return
	}
	err := host.HandleProtocol(ctx, r.cfg.EchoProtocol, func(s *sdk.Stream) {
		defer s.Close()
		data, err := io.ReadAll(s)
		if err != nil {
			r.fail(err)
			return
		}
		s.Write([]byte("echo:" + string(data)))
		r.update(func(rep *report) { rep.Served = append(rep.Served, s.RemotePeer()) })
	})
	if err != nil {
		r.fail(err)
	}
	if r.cfg.DialPeer != "" {
		go r.dial(ctx, host)
	}
}

// dial retries until the peer's plugin handles the protocol.
func (r *testRole) dial(ctx context.Context, host sdk.Host) {
	var last error
	for range 100 {
		if ctx.Err() != nil {
			return
		}
		got, err := echo(ctx, host, r.cfg.DialPeer, r.cfg.EchoProtocol, r.cfg.DialMessage)
		if err == nil {
			r.update(func(rep *report) { rep.Echoed = got })
			return
		}
		last = err
		time.Sleep(300 * time.Millisecond)
	}
	r.fail(last)
}

func echo(ctx context.Context, host sdk.Host, peer, protocol, msg string) (string, error) {
	s, err := host.OpenStream(ctx, peer, protocol)
	if err != nil {
		return "", err
	}
	defer s.Close()
	if _, err := s.Write([]byte(msg)); err != nil {
		return "", err
	}
	if err := s.CloseWrite(); err != nil {
		return "", err
	}
	data, err := io.ReadAll(s)
	return string(data), err
}

func (r *testRole) startPubSub(ctx context.Context, host sdk.Host) {
	if r.cfg.Topic == "" {
		return
	}
	msgs, err := host.SubscribeTopic(ctx, r.cfg.Topic)
	if err != nil {
		r.fail(err)
		return
	}
	go func() {
		for m := range msgs {
			r.update(func(rep *report) { rep.Messages = append(rep.Messages, m.From+" "+string(m.Data)) })
		}
	}()
	if r.cfg.Publish == "" {
		return
	}
	go func() {
		for ctx.Err() == nil {
			host.Publish(ctx, r.cfg.Topic, []byte(r.cfg.Publish))
			time.Sleep(200 * time.Millisecond)
		}
	}()
}

func (r *testRole) startEvents(ctx context.Context, host sdk.Host) {
	if r.cfg.Events == "" {
		return
	}
	events, err := host.Subscribe(ctx, r.cfg.Events)
	if err != nil {
		r.fail(err)
		return
	}
	go func() {
		for e := range events {
			key := e.Attrs["key"]
			r.update(func(rep *report) {
				if !slices.Contains(rep.Events, key) {
					rep.Events = append(rep.Events, key)
				}
			})
		}
	}()
}

func (r *testRole) Stop(context.Context) sdk.Diagnostics {
	if r.cancel != nil {
		r.cancel()
	}
	return nil
}

func main() {
	if v := os.Getenv("TESTROLE_PROTOCOL_VERSION"); v != "" {
		n, _ := strconv.Atoi(v)
		sdk.Handshake.ProtocolVersion = uint(n)
	}
	sdk.Serve(&testRole{})
}
