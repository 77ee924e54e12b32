package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/avnode/avnode/sdk"
	"github.com/avnode/avnode/sdk/pluginpb"
)

// fakeHost is the node as far as the gateway uses it: a few names, a store
// of files and directories, and switches to make calls fail or wait.
type fakeHost struct {
	sdk.Host // calls the gateway does not make panic

	mu       sync.Mutex
	names    map[string]*pluginpb.Resolution
	files    map[string][]byte               // CID → content
	dirs     map[string][]*pluginpb.DirEntry // CID → entries
	evicted  map[string]bool                 // files ReadFile says are gone until the next Fetch
	fetchErr map[string]error                // Fetch target → its error
	hold     chan struct{}                   // when set, Fetch waits for it to close (or ctx)
	started  chan string                     // when set, Fetch reports its target here first
	resolves []string
	fetched  []string
	quiet    int // fetches asked not to be announced
	reads    int
	asked    int64             // bytes ReadFile was asked for, in all
	config   map[string]string // NodeConfig
	services map[string]string // SetService
}

func newFakeHost() *fakeHost {
	return &fakeHost{names: map[string]*pluginpb.Resolution{}, files: map[string][]byte{}, dirs: map[string][]*pluginpb.DirEntry{},
		evicted: map[string]bool{}, fetchErr: map[string]error{}, config: map[string]string{}, services: map[string]string{}}
}

// fakeCID makes a CID-shaped string (base32 CIDv1) for content.
func fakeCID(content string) string {
	sum := sha256.Sum256([]byte(content))
	return "bafybei" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:]))
}

// addDir stores a directory of files (name → content) and subdirectories
// (name → CID from another addDir) and returns its CID.
func (f *fakeHost) addDir(files map[string]string, subdirs map[string]string) string {
	var entries []*pluginpb.DirEntry
	var id strings.Builder
	for name, content := range files {
		c := fakeCID(content)
		f.files[c] = []byte(content)
		entries = append(entries, &pluginpb.DirEntry{Name: name, Cid: c, Kind: "file", Size: int64(len(content))})
	}
	for name, c := range subdirs {
		entries = append(entries, &pluginpb.DirEntry{Name: name, Cid: c, Kind: "dir"})
	}
	for _, e := range entries {
		fmt.Fprintf(&id, "%s=%s;", e.Name, e.Cid)
	}
	c := fakeCID("dir:" + id.String())
	f.dirs[c] = entries
	return c
}

func (f *fakeHost) Resolve(_ context.Context, name string) (*pluginpb.Resolution, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resolves = append(f.resolves, name)
	res, ok := f.names[name]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "resolve %s: not found", name)
	}
	return res, nil
}

func (f *fakeHost) FetchUnannounced(ctx context.Context, target string) (*pluginpb.FetchResult, error) {
	f.mu.Lock()
	f.quiet++
	f.mu.Unlock()
	return f.Fetch(ctx, target)
}

func (f *fakeHost) Fetch(ctx context.Context, target string) (*pluginpb.FetchResult, error) {
	f.mu.Lock()
	f.fetched = append(f.fetched, target)
	hold, started := f.hold, f.started
	err := f.fetchErr[target]
	f.mu.Unlock()
	if started != nil {
		started <- target
	}
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return nil, status.Error(codes.DeadlineExceeded, ctx.Err().Error())
		}
	}
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.evicted) // a fetch brings the whole root back
	var root, p string
	if rest, ok := strings.CutPrefix(target, "/cid/"); ok {
		root, p, _ = strings.Cut(rest, "/")
	} else {
		name, rest, _ := strings.Cut(target, "/")
		res, ok := f.names[name]
		if !ok {
			return nil, status.Errorf(codes.NotFound, "get %s: name not found", target)
		}
		root, p = res.Root, rest
	}
	out := &pluginpb.FetchResult{Root: root, Cid: root, Kind: "dir"}
	if _, ok := f.dirs[root]; !ok {
		if _, ok := f.files[root]; !ok {
			return nil, status.Errorf(codes.NotFound, "get %s: no content %s", target, root)
		}
		out.Kind = "file"
	}
	for _, part := range strings.Split(p, "/") {
		if part == "" {
			continue
		}
		e := entry(&pluginpb.FetchResult{Entries: f.dirs[out.Cid]}, part)
		if e == nil || out.Kind != "dir" {
			return nil, status.Errorf(codes.NotFound, "get %s: no entry %q", target, part)
		}
		out.Cid, out.Kind, out.Size = e.Cid, e.Kind, e.Size
	}
	if out.Kind == "dir" {
		out.Entries = f.dirs[out.Cid]
	} else {
		out.Size = int64(len(f.files[out.Cid]))
	}
	return out, nil
}

func (f *fakeHost) ReadFile(_ context.Context, cid string, offset, length int64) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	data, ok := f.files[cid]
	if !ok || f.evicted[cid] {
		return nil, status.Errorf(codes.NotFound, "content %s: not found", cid)
	}
	if offset > int64(len(data)) {
		return nil, status.Errorf(codes.InvalidArgument, "offset %d past the end", offset)
	}
	end := int64(len(data))
	if length > 0 {
		end = min(end, offset+length)
	}
	f.asked += end - offset
	return io.NopCloser(bytes.NewReader(data[offset:end])), nil
}

func (f *fakeHost) NodeConfig(_ context.Context, key string, v any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.config[key]
	if !ok {
		return status.Errorf(codes.NotFound, "no config key %q", key)
	}
	*(v.(*string)) = s
	return nil
}

func (f *fakeHost) SetService(_ context.Context, name, url string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.services[name] = url
	return nil
}

func (f *fakeHost) Logger() *slog.Logger               { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
func (f *fakeHost) Gauge(string, string, float64)      {}
func (f *fakeHost) CounterAdd(string, string, float64) {}

// calls returns copies of what was asked of the fake.
func (f *fakeHost) calls() (resolves, fetched []string, reads int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string{}, f.resolves...), append([]string{}, f.fetched...), f.reads
}
