package plugins

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/avnode/avnode/core/api"
	"github.com/avnode/avnode/sdk"
	"github.com/avnode/avnode/sdk/pluginpb"
)

// Services are what roles run for users (the receiver's gateway URL), as
// `avnode id` shows them.
type Services struct {
	mu  sync.Mutex
	all map[string]string
}

// Set records a service's URL; an empty url removes it.
func (s *Services) Set(name, url string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.all == nil {
		s.all = map[string]string{}
	}
	if url == "" {
		delete(s.all, name)
		return
	}
	s.all[name] = url
}

// All returns a copy of every service.
func (s *Services) All() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := maps.Clone(s.all)
	if out == nil {
		out = map[string]string{}
	}
	return out
}

func (h *HostAPI) Fetch(ctx context.Context, req *pluginpb.FetchRequest) (*pluginpb.FetchResult, error) {
	var from []peer.ID
	for _, p := range req.GetFromPeers() {
		id, err := peer.Decode(p)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "from_peers: %q is not a peer ID", p)
		}
		from = append(from, id)
	}
	res, err := h.node.Fetch(ctx, req.GetTarget(), api.FetchOptions{From: from, NoAnnounce: req.GetNoAnnounce()})
	if err != nil {
		return nil, grpcError(err)
	}
	out := &pluginpb.FetchResult{Root: res.Root, Cid: res.CID, Kind: res.Kind, Size: res.Size, BlocksFetched: int32(res.Stats.Fetched)}
	for _, e := range res.Entries {
		out.Entries = append(out.Entries, &pluginpb.DirEntry{Name: e.Name, Cid: e.CID, Kind: e.Kind, Size: e.Size})
	}
	return out, nil
}

// ReadFile streams a stored file in chunks of at most 256 KiB.
func (h *HostAPI) ReadFile(req *pluginpb.ReadRequest, stream pluginpb.Host_ReadFileServer) error {
	c, err := parseCID(req.GetCid())
	if err != nil {
		return err
	}
	w := &chunkSender{stream: stream, buf: make([]byte, 0, readChunk)}
	if _, err := h.node.WriteRange(stream.Context(), c, req.GetOffset(), req.GetLength(), w); err != nil {
		if w.sent == 0 && len(w.buf) == 0 {
			return grpcError(err)
		}
		return status.Error(codes.DataLoss, err.Error())
	}
	return w.flush()
}

const readChunk = 256 << 10

// chunkSender gathers writes into chunks for a ReadFile stream.
type chunkSender struct {
	stream pluginpb.Host_ReadFileServer
	buf    []byte
	sent   int
}

func (w *chunkSender) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		take := min(len(p), readChunk-len(w.buf))
		w.buf = append(w.buf, p[:take]...)
		p = p[take:]
		if len(w.buf) == readChunk {
			if err := w.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (w *chunkSender) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	err := w.stream.Send(&pluginpb.FileChunk{Data: w.buf})
	w.sent++
	w.buf = w.buf[:0] // Send has marshalled it
	return err
}

// NodeConfig answers one dotted key of the node's effective config.
func (h *HostAPI) NodeConfig(_ context.Context, req *pluginpb.ConfigKey) (*pluginpb.ConfigValue, error) {
	data, err := h.node.ConfigJSON()
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	for _, part := range strings.Split(req.GetKey(), ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, status.Errorf(codes.NotFound, "no config key %q", req.GetKey())
		}
		if v, ok = m[part]; !ok {
			return nil, status.Errorf(codes.NotFound, "no config key %q", req.GetKey())
		}
	}
	out, _ := json.Marshal(v)
	return &pluginpb.ConfigValue{Json: out}, nil
}

func (h *HostAPI) SetService(_ context.Context, req *pluginpb.Service) (*pluginpb.Empty, error) {
	if req.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "a service needs a name")
	}
	h.roles.services.Set(req.GetName(), req.GetUrl())
	h.log.Info("service", "name", req.GetName(), "url", req.GetUrl())
	return &pluginpb.Empty{}, nil
}

// CallRole runs another role's command: a plugin handing work to another.
func (h *HostAPI) CallRole(ctx context.Context, req *pluginpb.RoleCall) (*pluginpb.CommandResult, error) {
	out, err := h.roles.Command(ctx, req.GetRole(), req.GetName(), req.GetArgs())
	if errors.Is(err, ErrNotRunning) {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	if err != nil {
		return &pluginpb.CommandResult{Diagnostics: sdk.Diagnostics{sdk.Errorf("%v", err)}.Proto()}, nil
	}
	return &pluginpb.CommandResult{OutputJson: out}, nil
}
