package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/avnode/avnode/sdk"
)

// satelliteWork bounds what the beacon does for one satellite request (a
// get may fetch a whole site).
const satelliteWork = 2 * time.Minute

// pairings are the satellites paired with this beacon, by peer ID, with
// the name each paired for. They are kept in the role's data folder.
type pairings struct {
	mu    sync.Mutex
	path  string
	peers map[string]string
}

func loadPairings(dir string) (*pairings, error) {
	p := &pairings{path: filepath.Join(dir, "satellites.json"), peers: map[string]string{}}
	data, err := os.ReadFile(p.path)
	if errors.Is(err, os.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return nil, err
	}
	return p, json.Unmarshal(data, &p.peers)
}

func (p *pairings) name(peer string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n, ok := p.peers[peer]
	return n, ok
}

func (p *pairings) set(peer, name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if name == "" {
		delete(p.peers, peer)
	} else {
		p.peers[peer] = name
	}
	data, err := json.MarshalIndent(p.peers, "", "  ")
	if err != nil {
		return err
	}
	return sdk.WriteFileAtomic(p.path, data)
}

// paired lists the satellites paired for name.
func (p *pairings) paired(name string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for peer, n := range p.peers {
		if n == name {
			out = append(out, peer)
		}
	}
	return out
}

// Limits on what a peer may make the beacon hold. A request is read only
// once the peer is known to be paired or delegated to; an unpaired peer may
// only ask to pair, a request of a few hundred bytes. (The node lets one
// peer hold at most 4 streams of a plugin's protocol at once.)
const (
	satelliteReadTimeout  = 10 * time.Second // a whole request arrives within this
	maxPairRequest        = 4 << 10          // the most an unpaired, delegated peer may send
	satelliteRefusalsLogs = 1                // refusal log lines a second, at most (a stranger can cause them)
)

// serveSatellite answers one request of a satellite. Who the peer is comes
// from its authenticated connection, so strangers are refused before a byte
// of their request is read.
func (b *beacon) serveSatellite(ctx context.Context, s *sdk.Stream) {
	defer s.Close()
	peer := s.RemotePeer()
	var req sdk.SatelliteRequest
	resp := sdk.SatelliteResponse{}
	limit, err := b.admit(ctx, peer)
	if err == nil {
		err = readRequest(s, &req, limit)
		if err != nil {
			err = fmt.Errorf("bad request: %w", err)
		}
	}
	if err != nil {
		resp.Error = err.Error()
	} else {
		ctx, cancel := context.WithTimeout(ctx, satelliteWork)
		resp = b.answer(ctx, peer, req)
		cancel()
	}
	if err := sdk.WriteSatelliteMessage(s, resp); err != nil {
		b.host.Logger().Debug("answer satellite", "peer", peer, "err", err)
	}
}

// readRequest reads one request of at most limit bytes; a peer that has not
// sent it all within satelliteReadTimeout is cut off.
func readRequest(s *sdk.Stream, req *sdk.SatelliteRequest, limit int) error {
	deadline := time.AfterFunc(satelliteReadTimeout, s.Reset)
	defer deadline.Stop()
	return sdk.ReadSatelliteMessageLimit(s, req, limit)
}

// admit says how many bytes of request the beacon reads from peer: a
// paired satellite's whole request, a peer delegated to by a hosted name
// a pair request; anyone else is refused unread.
func (b *beacon) admit(ctx context.Context, peer string) (int, error) {
	if _, ok := b.pairs.name(peer); ok {
		return sdk.MaxSatelliteMessage, nil
	}
	var err error
	for _, n := range b.cfg.Names {
		if err = b.checkDelegated(ctx, peer, n.Name); err == nil {
			return maxPairRequest, nil
		}
	}
	if err == nil {
		err = errors.New("this beacon hosts no name")
	}
	err = fmt.Errorf("%s is not paired with this beacon and no name it hosts delegates to it (%w): the owner runs `avnode roles call beacon delegate NAME %s` on the beacon, then the satellite runs `avnode satellite pair NAME`", peer, err, peer)
	for _, n := range b.cfg.Names {
		b.countSatellite(n.Name, false)
	}
	b.refused("", peer, err)
	return 0, err
}

// refused logs a refusal, at most satelliteRefusalsLogs a second: whoever
// opens streams can cause them.
func (b *beacon) refused(name, peer string, reason error) {
	if b.refusalLogs.Allow() {
		b.host.Logger().Info("refused a satellite", "peer", peer, "name", name, "reason", reason)
	}
}

func (b *beacon) answer(ctx context.Context, peer string, req sdk.SatelliteRequest) sdk.SatelliteResponse {
	if req.Op == sdk.SatPair {
		return b.pair(ctx, peer, req.Name)
	}
	name, err := b.pairedFor(ctx, peer)
	if err != nil {
		b.countSatellite(name, false)
		b.refused(name, peer, err)
		return sdk.SatelliteResponse{Error: err.Error()}
	}
	b.countSatellite(name, true)
	resp, err := b.work(ctx, req)
	if err != nil {
		return sdk.SatelliteResponse{Error: err.Error()}
	}
	return resp
}

// pair pairs a satellite the owner of name delegated to (a SAT record).
func (b *beacon) pair(ctx context.Context, peer, name string) sdk.SatelliteResponse {
	if err := b.checkDelegated(ctx, peer, name); err != nil {
		b.countSatellite(name, false)
		b.refused(name, peer, err)
		return sdk.SatelliteResponse{Error: err.Error()}
	}
	if err := b.pairs.set(peer, name); err != nil {
		return sdk.SatelliteResponse{Error: fmt.Sprintf("the beacon could not save the pairing: %v", err)}
	}
	b.host.Logger().Info("paired a satellite", "peer", peer, "name", name)
	b.update(name, func(st *nameStatus) { st.Paired = b.pairs.paired(name) })
	return sdk.SatelliteResponse{Beacon: b.host.PeerID()}
}

// pairedFor checks that peer paired and is still delegated to; a revoked
// satellite is unpaired.
func (b *beacon) pairedFor(ctx context.Context, peer string) (string, error) {
	name, ok := b.pairs.name(peer)
	if !ok {
		return "", fmt.Errorf("%s is not paired with this beacon: the owner runs `avnode roles call beacon delegate NAME %s` on the beacon, then the satellite runs `avnode satellite pair NAME`", peer, peer)
	}
	if err := b.checkDelegated(ctx, peer, name); err != nil {
		b.pairs.set(peer, "")
		b.update(name, func(st *nameStatus) { st.Paired = b.pairs.paired(name) })
		return name, fmt.Errorf("unpaired: %w", err)
	}
	return name, nil
}

func (b *beacon) checkDelegated(ctx context.Context, peer, name string) error {
	if !b.hosts(name) {
		return fmt.Errorf("this beacon does not host %s", name)
	}
	res, err := b.host.Resolve(ctx, name)
	if err != nil {
		return fmt.Errorf("the beacon cannot read %s: %v", name, err)
	}
	if !sdk.Delegated(res, peer) {
		return fmt.Errorf("the owner of %s has not delegated to %s: run `avnode roles call beacon delegate %s %s` on the beacon", name, peer, name, peer)
	}
	return nil
}

// work does what a paired satellite asks.
func (b *beacon) work(ctx context.Context, req sdk.SatelliteRequest) (sdk.SatelliteResponse, error) {
	switch req.Op {
	case sdk.SatResolve:
		res, err := b.host.Resolve(ctx, req.Name)
		if err != nil {
			return sdk.SatelliteResponse{}, err
		}
		return sdk.SatelliteResponse{Zone: res.SignedZone, ZoneName: registered(res.Name)}, nil
	case sdk.SatGet:
		return b.get(ctx, req.Target)
	case sdk.SatOffload:
		out, err := b.host.CallRole(ctx, req.Service, "offload", string(req.Payload))
		if err != nil {
			return sdk.SatelliteResponse{}, fmt.Errorf("offload to %s: %w", req.Service, err)
		}
		return sdk.SatelliteResponse{Output: out}, nil
	}
	return sdk.SatelliteResponse{}, fmt.Errorf("unknown operation %q; a beacon answers pair, resolve, get, offload", req.Op)
}

func (b *beacon) countSatellite(name string, served bool) {
	if served {
		b.host.CounterAdd("satellite_requests", "requests of paired satellites answered", 1)
	} else {
		b.host.CounterAdd("satellite_refused", "requests of satellites refused (not paired or not delegated)", 1)
	}
	b.update(name, func(st *nameStatus) {
		if served {
			st.SatelliteRequests++
		} else {
			st.SatelliteRefused++
		}
	})
}

// get fetches a target for a satellite and answers its root and, for a
// name, the signed zone that names that root. The name is resolved once,
// here: the content fetched is the root of the zone answered, not of
// another resolve that a newer version may have changed in between.
func (b *beacon) get(ctx context.Context, target string) (sdk.SatelliteResponse, error) {
	name, path, ok := splitTarget(target)
	if !ok {
		fetched, err := b.host.Fetch(ctx, target)
		return sdk.SatelliteResponse{Root: fetched.Root}, err
	}
	res, err := b.host.Resolve(ctx, name)
	if err != nil {
		return sdk.SatelliteResponse{}, err
	}
	if res.Root == "" {
		return sdk.SatelliteResponse{}, fmt.Errorf("%s has no content", name)
	}
	fetched, err := b.host.Fetch(ctx, "/cid/"+res.Root+path)
	if err != nil {
		return sdk.SatelliteResponse{}, err
	}
	return sdk.SatelliteResponse{Root: fetched.Root, Zone: res.SignedZone, ZoneName: registered(res.Name)}, nil
}

// splitTarget splits a get target NAME[/PATH] into the name and the path
// ("" or "/PATH"); /cid/ targets have no name.
func splitTarget(target string) (name, path string, ok bool) {
	if strings.HasPrefix(target, "/cid/") {
		return "", "", false
	}
	name, path, _ = strings.Cut(strings.TrimPrefix(target, "/name/"), "/")
	if path != "" {
		path = "/" + path
	}
	return name, path, name != ""
}

// registered is the name's zone: its last two labels (api.coolblog.code → coolblog.code).
func registered(name string) string {
	labels := strings.Split(name, ".")
	if len(labels) <= 2 {
		return name
	}
	return strings.Join(labels[len(labels)-2:], ".")
}
