package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/avnode/avnode/sdk/pluginpb"
)

func (h *grpcHost) FetchFrom(ctx context.Context, target string, peers []string) (Fetched, error) {
	if len(peers) == 0 {
		return Fetched{}, wrap("FetchFrom", target, errors.New("no peer to fetch from"))
	}
	return h.fetch(ctx, "FetchFrom", &pluginpb.FetchRequest{Target: target, FromPeers: peers})
}

func (h *grpcHost) FetchUnannounced(ctx context.Context, target string) (Fetched, error) {
	return h.fetch(ctx, "FetchUnannounced", &pluginpb.FetchRequest{Target: target, NoAnnounce: true})
}

// fetch runs one of the Fetch variants; op names it in errors.
func (h *grpcHost) fetch(ctx context.Context, op string, req *pluginpb.FetchRequest) (Fetched, error) {
	res, err := h.c.Fetch(ctx, req)
	if err != nil {
		return Fetched{}, wrap(op, req.GetTarget(), err)
	}
	return fetchedFromProto(res), nil
}

func (h *grpcHost) ReadFile(ctx context.Context, cid string, offset, length int64) (io.ReadCloser, error) {
	ctx, cancel := context.WithCancel(ctx)
	stream, err := h.c.ReadFile(ctx, &pluginpb.ReadRequest{Cid: cid, Offset: offset, Length: length})
	if err != nil {
		cancel()
		return nil, wrap("ReadFile", cid, err)
	}
	// The node's first answer tells whether the file is there: report a
	// NotFound now, not at the first Read.
	first, err := stream.Recv()
	if err != nil && err != io.EOF {
		cancel()
		return nil, wrap("ReadFile", cid, err)
	}
	r := &fileReader{cid: cid, stream: stream, cancel: cancel}
	if err == io.EOF {
		r.err = io.EOF
	} else {
		r.rest = first.GetData()
	}
	return r, nil
}

// fileReader reads a ReadFile stream's chunks in order.
type fileReader struct {
	cid    string
	stream pluginpb.Host_ReadFileClient
	cancel context.CancelFunc
	rest   []byte
	err    error
}

func (r *fileReader) Read(p []byte) (int, error) {
	for len(r.rest) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		c, err := r.stream.Recv()
		if err == io.EOF {
			r.err = io.EOF
		} else if err != nil {
			r.err = wrap("ReadFile", r.cid, err)
		} else {
			r.rest = c.GetData()
		}
	}
	n := copy(p, r.rest)
	r.rest = r.rest[n:]
	return n, nil
}

func (r *fileReader) Close() error {
	r.cancel()
	return nil
}

func (h *grpcHost) NodeConfig(ctx context.Context, key string, v any) error {
	val, err := h.c.NodeConfig(ctx, &pluginpb.ConfigKey{Key: key})
	if err != nil {
		return wrap("NodeConfig", key, err)
	}
	if err := json.Unmarshal(val.GetJson(), v); err != nil {
		return fmt.Errorf("node config %s: %w", key, err)
	}
	return nil
}

func (h *grpcHost) SetService(ctx context.Context, name, url string) error {
	_, err := h.c.SetService(ctx, &pluginpb.Service{Name: name, Url: url})
	return wrap("SetService", name, err)
}

func (h *grpcHost) CallRole(ctx context.Context, role, command string, args ...string) (json.RawMessage, error) {
	res, err := h.c.CallRole(ctx, &pluginpb.RoleCall{Role: role, Name: command, Args: args})
	if err != nil {
		return nil, wrap("CallRole", role+" "+command, err)
	}
	if err := DiagnosticsFromProto(res.GetDiagnostics()).Err(); err != nil {
		return nil, fmt.Errorf("role %s: %s: %w", role, command, err)
	}
	return res.GetOutputJson(), nil
}
