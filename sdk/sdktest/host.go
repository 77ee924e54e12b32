package sdktest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/avnode/avnode/sdk"
)

// PeerID is the peer ID a Host reports as its own unless SetPeerID changes it.
const PeerID = "12D3KooWSdkTestHostPeer"

// Host is an sdk.Host in memory. Every method is safe for concurrent use.
// Errors carry gRPC status codes, as the node's do, so that sdk.IsNotFound
// and status.Code work on them.
type Host struct {
	dataDir string

	mu        sync.Mutex
	peerID    string
	calls     map[string][]string // method → the first argument of each call, in order
	fail      map[string]error    // "Method arg" or "Method" → the error it returns
	names     map[string]sdk.Resolution
	records   map[string][]byte
	files     map[string][]byte         // CID → content
	dirs      map[string][]sdk.DirEntry // CID → entries
	evicted   map[string]bool           // files ReadFile refuses until the next fetch
	hold      chan struct{}             // when set, fetches wait for it to close
	started   chan string               // when set, fetches report their target here first
	bytesRead int64
	pins      map[string]string   // CID → reason
	providers map[string][]string // CID → peer IDs
	copies    map[string][]string // name@seq → peer IDs
	verdicts  map[string]sdk.Verdict
	relay     *sdk.RelayLimits
	relayStat sdk.RelayStats
	config    map[string]json.RawMessage
	services  map[string]string
	roles     map[string]func(ctx context.Context, command string, args []string) (any, error)
	gauges    map[string]float64
	counters  map[string]float64
	logs      []string
	events    []subscriber[sdk.Event]
	topics    []subscriber[sdk.TopicMessage]
}

type subscriber[T any] struct {
	match func(T) bool
	ch    chan T
}

// NewHost returns an empty Host whose DataDir is a temporary directory of t.
func NewHost(t testing.TB) *Host {
	return &Host{
		dataDir: t.TempDir(), peerID: PeerID,
		calls: map[string][]string{}, fail: map[string]error{}, names: map[string]sdk.Resolution{},
		records: map[string][]byte{}, files: map[string][]byte{}, dirs: map[string][]sdk.DirEntry{},
		evicted: map[string]bool{}, pins: map[string]string{}, providers: map[string][]string{},
		copies: map[string][]string{}, verdicts: map[string]sdk.Verdict{}, config: map[string]json.RawMessage{},
		services: map[string]string{}, gauges: map[string]float64{}, counters: map[string]float64{},
		roles: map[string]func(context.Context, string, []string) (any, error){},
	}
}

var _ sdk.Host = (*Host)(nil)

// CID is the CID-shaped string (base32, CIDv1-like) Host gives content.
// It is not a real CID: only Host reads it.
func CID(content string) string {
	sum := sha256.Sum256([]byte(content))
	return "bafybei" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:]))
}

// SetPeerID changes the peer ID the Host reports as its own.
func (h *Host) SetPeerID(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.peerID = id
}

// SetName makes Resolve answer res for res.Name, and a fetch of the name
// fetch res.Root.
func (h *Host) SetName(res sdk.Resolution) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.names[res.Name] = res
}

// AddFile stores a file and returns its CID.
func (h *Host) AddFile(content string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := CID(content)
	h.files[c] = []byte(content)
	return c
}

// AddFileAs stores a file under a CID of the test's choosing: a real CID,
// for a role that checks them.
func (h *Host) AddFileAs(cid, content string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.files[cid] = []byte(content)
}

// AddDir stores a directory of files (name → content) and subdirectories
// (name → a CID from another AddDir), and returns its CID.
func (h *Host) AddDir(files map[string]string, subdirs map[string]string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var entries []sdk.DirEntry
	for _, name := range slices.Sorted(maps.Keys(files)) {
		c := CID(files[name])
		h.files[c] = []byte(files[name])
		entries = append(entries, sdk.DirEntry{Name: name, CID: c, Kind: "file", Size: int64(len(files[name]))})
	}
	for _, name := range slices.Sorted(maps.Keys(subdirs)) {
		entries = append(entries, sdk.DirEntry{Name: name, CID: subdirs[name], Kind: "dir"})
	}
	var id strings.Builder
	for _, e := range entries {
		fmt.Fprintf(&id, "%s=%s;", e.Name, e.CID)
	}
	c := CID("dir:" + id.String())
	h.dirs[c] = entries
	return c
}

// Evict makes ReadFile of cid NotFound until the next fetch, as when the
// node's garbage collection dropped it.
func (h *Host) Evict(cid string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.evicted[cid] = true
}

// Fail makes method (e.g. "Fetch") return err when its first argument is
// arg, or on every call when arg is "". A nil err undoes it.
func (h *Host) Fail(method, arg string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	key := strings.TrimSpace(method + " " + arg)
	if err == nil {
		delete(h.fail, key)
		return
	}
	h.fail[key] = err
}

// HoldFetches makes every fetch wait until release is called (or its
// context ends), reporting its target on started first. started holds
// the first 256 targets.
func (h *Host) HoldFetches() (started <-chan string, release func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.hold, h.started = make(chan struct{}), make(chan string, 256)
	hold := h.hold
	var once sync.Once
	return h.started, func() {
		once.Do(func() {
			close(hold)
			h.mu.Lock()
			h.hold, h.started = nil, nil
			h.mu.Unlock()
		})
	}
}

// SetVerdict makes Decide answer v for hook; a hook without one has no
// opinion (Decided false).
func (h *Host) SetVerdict(hook string, v sdk.Verdict) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.verdicts[hook] = v
}

// SetConfig makes NodeConfig(key) decode v (marshalled to JSON).
func (h *Host) SetConfig(key string, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("sdktest: config %s is not JSON: %v", key, err))
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.config[key] = data
}

// SetProviders makes FindProviders(cid) answer peers.
func (h *Host) SetProviders(cid string, peers ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.providers[cid] = peers
}

// SetRelayStats sets what RelayStatus answers once the relay runs.
func (h *Host) SetRelayStats(st sdk.RelayStats) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.relayStat = st
}

// HandleRole makes CallRole(role, …) run fn; its result is marshalled to
// JSON, as a role's command result is.
func (h *Host) HandleRole(role string, fn func(ctx context.Context, command string, args []string) (any, error)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.roles[role] = fn
}

// Emit sends ev to the Subscribe channels that asked for its kind. A full
// channel loses it, as the node's does.
func (h *Host) Emit(ev sdk.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	deliver(h.events, ev)
}

// Deliver sends msg, as from another peer, to the SubscribeTopic channels of
// msg.Topic.
func (h *Host) Deliver(msg sdk.TopicMessage) {
	h.mu.Lock()
	defer h.mu.Unlock()
	deliver(h.topics, msg)
}

// subscribe adds a subscriber to *subs and returns its channel, which closes
// when ctx ends, as the node's does: a role ranging over it sees the end.
// The caller holds h.mu.
func subscribe[T any](h *Host, subs *[]subscriber[T], ctx context.Context, match func(T) bool) <-chan T {
	ch := make(chan T, 64)
	*subs = append(*subs, subscriber[T]{ch: ch, match: match})
	context.AfterFunc(ctx, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		*subs = slices.DeleteFunc(*subs, func(s subscriber[T]) bool { return s.ch == ch })
		close(ch)
	})
	return ch
}

// deliver sends v to the subscribers it matches. Ended ones were already
// removed by subscribe, under the same lock.
func deliver[T any](subs []subscriber[T], v T) {
	for _, s := range subs {
		if s.match(v) {
			select {
			case s.ch <- v:
			default:
			}
		}
	}
}

// Calls returns the first argument of each call of method (e.g. the
// targets of Fetch, the names of Resolve), in the order they came.
func (h *Host) Calls(method string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.calls[method])
}

// Record returns a DHT record PutRecord stored.
func (h *Host) Record(key string) ([]byte, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.records[key]
	return v, ok
}

// Pins returns the pinned CIDs and the reason given for each.
func (h *Host) Pins() map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return maps.Clone(h.pins)
}

// RelayLimits returns the limits of the last StartRelay, and whether it was called.
func (h *Host) RelayLimits() (sdk.RelayLimits, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.relay == nil {
		return sdk.RelayLimits{}, false
	}
	return *h.relay, true
}

// Services returns the services SetService announced (name → URL).
func (h *Host) Services() map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return maps.Clone(h.services)
}

// GaugeValue returns a gauge's last value, and whether it was set.
func (h *Host) GaugeValue(name string) (float64, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.gauges[name]
	return v, ok
}

// CounterValue returns a counter's sum, and whether it was added to.
func (h *Host) CounterValue(name string) (float64, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.counters[name]
	return v, ok
}

// Logs returns the messages logged through Logger, with their attributes
// as the text handler writes them.
func (h *Host) Logs() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.logs)
}

// BytesRead is how many bytes ReadFile calls asked for, in all.
func (h *Host) BytesRead() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.bytesRead
}

// begin records a call and returns the error Fail set for it. The caller
// holds h.mu.
func (h *Host) begin(method, arg string) error {
	h.calls[method] = append(h.calls[method], arg)
	if err, ok := h.fail[method+" "+arg]; ok {
		return err
	}
	return h.fail[method]
}

// call is begin for calls that need nothing else under the lock.
func (h *Host) call(method, arg string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.begin(method, arg)
}

func notFound(format string, args ...any) error {
	return status.Errorf(codes.NotFound, format, args...)
}

// Resolve answers what SetName set.
func (h *Host) Resolve(_ context.Context, name string) (sdk.Resolution, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.begin("Resolve", name); err != nil {
		return sdk.Resolution{}, err
	}
	res, ok := h.names[name]
	if !ok {
		return sdk.Resolution{}, notFound("resolve %s: name not found", name)
	}
	return res, nil
}

// GetRecord answers what PutRecord stored.
func (h *Host) GetRecord(_ context.Context, key string) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.begin("GetRecord", key); err != nil {
		return nil, err
	}
	v, ok := h.records[key]
	if !ok {
		return nil, notFound("no record under %s", key)
	}
	return v, nil
}

// PutRecord stores a record, unchecked.
func (h *Host) PutRecord(_ context.Context, key string, value []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.begin("PutRecord", key); err != nil {
		return err
	}
	h.records[key] = value
	return nil
}

// SetZoneRecord adds a record to a name SetName or Claim made, and raises its Seq.
func (h *Host) SetZoneRecord(_ context.Context, name, typ, label, value string) (sdk.Zone, error) {
	return h.changeZone("SetZoneRecord", name, func(rs []sdk.ZoneRecord) []sdk.ZoneRecord {
		return append(rs, sdk.ZoneRecord{Type: typ, Label: label, Value: value})
	})
}

// RemoveZoneRecord removes a record from a name SetName or Claim made, and raises its Seq.
func (h *Host) RemoveZoneRecord(_ context.Context, name, typ, label, value string) (sdk.Zone, error) {
	return h.changeZone("RemoveZoneRecord", name, func(rs []sdk.ZoneRecord) []sdk.ZoneRecord {
		return slices.DeleteFunc(rs, func(r sdk.ZoneRecord) bool { return r == sdk.ZoneRecord{Type: typ, Label: label, Value: value} })
	})
}

func (h *Host) changeZone(method, name string, change func([]sdk.ZoneRecord) []sdk.ZoneRecord) (sdk.Zone, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.begin(method, name); err != nil {
		return sdk.Zone{}, err
	}
	res, ok := h.names[name]
	if !ok {
		return sdk.Zone{}, notFound("zone of %s: this node does not own the name", name)
	}
	res.Records = change(slices.Clone(res.Records))
	res.Seq++
	h.names[name] = res
	return sdk.Zone{Name: name, Seq: res.Seq, Records: slices.Clone(res.Records)}, nil
}

// Provide adds this node to the CID's providers.
func (h *Host) Provide(_ context.Context, cid string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.begin("Provide", cid); err != nil {
		return err
	}
	if !slices.Contains(h.providers[cid], h.peerID) {
		h.providers[cid] = append(h.providers[cid], h.peerID)
	}
	return nil
}

// FindProviders answers what SetProviders and Provide made.
func (h *Host) FindProviders(_ context.Context, cid string) ([]string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.begin("FindProviders", cid); err != nil {
		return nil, err
	}
	return slices.Clone(h.providers[cid]), nil
}

// Fetch finds a target (NAME[/PATH] or /cid/CID[/PATH]) in what AddFile,
// AddDir and SetName stored.
func (h *Host) Fetch(ctx context.Context, target string) (sdk.Fetched, error) {
	return h.fetch(ctx, "Fetch", target)
}

// FetchFrom is Fetch; the peers are not checked.
func (h *Host) FetchFrom(ctx context.Context, target string, _ []string) (sdk.Fetched, error) {
	return h.fetch(ctx, "FetchFrom", target)
}

// FetchUnannounced is Fetch.
func (h *Host) FetchUnannounced(ctx context.Context, target string) (sdk.Fetched, error) {
	return h.fetch(ctx, "FetchUnannounced", target)
}

func (h *Host) fetch(ctx context.Context, method, target string) (sdk.Fetched, error) {
	h.mu.Lock()
	err := h.begin(method, target)
	hold, started := h.hold, h.started
	h.mu.Unlock()
	if started != nil {
		select {
		case started <- target:
		default:
		}
	}
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return sdk.Fetched{}, status.Error(codes.DeadlineExceeded, ctx.Err().Error())
		}
	}
	if err != nil {
		return sdk.Fetched{}, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	clear(h.evicted) // a fetch brings the whole root back
	return h.find(target)
}

// find walks target's path from its root. The caller holds h.mu.
func (h *Host) find(target string) (sdk.Fetched, error) {
	var root, p string
	if rest, ok := strings.CutPrefix(target, "/cid/"); ok {
		root, p, _ = strings.Cut(rest, "/")
	} else {
		name, rest, _ := strings.Cut(target, "/")
		res, ok := h.names[name]
		if !ok {
			return sdk.Fetched{}, notFound("get %s: name not found", target)
		}
		root, p = res.Root, rest
	}
	out := sdk.Fetched{Root: root, CID: root, Kind: "dir"}
	if _, ok := h.dirs[root]; !ok {
		if _, ok := h.files[root]; !ok {
			return sdk.Fetched{}, notFound("get %s: no content %s", target, root)
		}
		out.Kind = "file"
	}
	for _, part := range strings.Split(p, "/") {
		if part == "" {
			continue
		}
		e, ok := sdk.Fetched{Entries: h.dirs[out.CID]}.Entry(part)
		if !ok || out.Kind != "dir" {
			return sdk.Fetched{}, notFound("get %s: no entry %q", target, part)
		}
		out.CID, out.Kind, out.Size = e.CID, e.Kind, e.Size
	}
	if out.Kind == "dir" {
		out.Entries = slices.Clone(h.dirs[out.CID])
	} else {
		out.Size = int64(len(h.files[out.CID]))
	}
	return out, nil
}

// Pin pins a CID, whether or not the Host holds it.
func (h *Host) Pin(_ context.Context, cid, reason string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.begin("Pin", cid); err != nil {
		return err
	}
	h.pins[cid] = reason
	return nil
}

// Unpin drops a pin.
func (h *Host) Unpin(_ context.Context, cid string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.begin("Unpin", cid); err != nil {
		return err
	}
	delete(h.pins, cid)
	return nil
}

// Subscribe returns a channel of the events Emit sends, of the given kinds
// (none: all), until ctx ends.
func (h *Host) Subscribe(ctx context.Context, kinds ...string) (<-chan sdk.Event, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.begin("Subscribe", strings.Join(kinds, ",")); err != nil {
		return nil, err
	}
	return subscribe(h, &h.events, ctx, func(e sdk.Event) bool {
		return len(kinds) == 0 || slices.Contains(kinds, e.Kind)
	}), nil
}

// Publish delivers data to the topic's subscribers, this node's own
// included, as from this node.
func (h *Host) Publish(_ context.Context, topic string, data []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.begin("Publish", topic); err != nil {
		return err
	}
	deliver(h.topics, sdk.TopicMessage{Topic: topic, Data: slices.Clone(data), From: h.peerID})
	return nil
}

// SubscribeTopic returns a channel of the topic's messages (Publish,
// Deliver) until ctx ends.
func (h *Host) SubscribeTopic(ctx context.Context, topic string) (<-chan sdk.TopicMessage, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.begin("SubscribeTopic", topic); err != nil {
		return nil, err
	}
	return subscribe(h, &h.topics, ctx, func(m sdk.TopicMessage) bool { return m.Topic == topic }), nil
}

// HandleProtocol is Unimplemented: streams need a node.
func (h *Host) HandleProtocol(_ context.Context, protocol string, _ func(*sdk.Stream)) error {
	if err := h.call("HandleProtocol", protocol); err != nil {
		return err
	}
	return status.Error(codes.Unimplemented, "sdktest: streams need a node")
}

// OpenStream is Unimplemented: streams need a node.
func (h *Host) OpenStream(_ context.Context, peerID, protocol string) (*sdk.Stream, error) {
	if err := h.call("OpenStream", peerID); err != nil {
		return nil, err
	}
	return nil, status.Error(codes.Unimplemented, "sdktest: streams need a node")
}

// Decide answers what SetVerdict set for hook, after checking that input
// is JSON, as the node does.
func (h *Host) Decide(_ context.Context, hook string, input any) (sdk.Verdict, error) {
	if _, err := json.Marshal(input); err != nil {
		return sdk.Verdict{}, status.Errorf(codes.InvalidArgument, "decide %s: input is not JSON: %v", hook, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.begin("Decide", hook); err != nil {
		return sdk.Verdict{}, err
	}
	return h.verdicts[hook], nil
}

// Claim makes name this node's, owned by the key's name, unless SetName
// or Claim made it already; it answers the name's resolution.
func (h *Host) Claim(_ context.Context, name, key string) (sdk.Resolution, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.begin("Claim", name); err != nil {
		return sdk.Resolution{}, err
	}
	res, ok := h.names[name]
	if !ok {
		res = sdk.Resolution{Name: name, Key: key, Seq: 1, Hosts: []sdk.PeerInfo{{ID: h.peerID}}}
		h.names[name] = res
	}
	return res, nil
}

// OfferZone stores the zone under key (/avtr-zone/NAME), unchecked, and
// answers the name's resolution with it as the signed zone.
func (h *Host) OfferZone(_ context.Context, key string, zone []byte) (sdk.Resolution, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.begin("OfferZone", key); err != nil {
		return sdk.Resolution{}, err
	}
	name := key[strings.LastIndex(key, "/")+1:]
	res, ok := h.names[name]
	if !ok {
		return sdk.Resolution{}, notFound("offer %s: name not found", key)
	}
	h.records[key] = zone
	res.SignedZone = zone
	h.names[name] = res
	return res, nil
}

// AttestCopy adds this node to the holders of version seq of name.
func (h *Host) AttestCopy(_ context.Context, name string, seq uint64) error {
	key := name + "@" + strconv.FormatUint(seq, 10)
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.begin("AttestCopy", key); err != nil {
		return err
	}
	if !slices.Contains(h.copies[key], h.peerID) {
		h.copies[key] = append(h.copies[key], h.peerID)
	}
	return nil
}

// FindCopies answers who AttestCopy added.
func (h *Host) FindCopies(_ context.Context, name string, seq uint64) ([]string, error) {
	key := name + "@" + strconv.FormatUint(seq, 10)
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.begin("FindCopies", key); err != nil {
		return nil, err
	}
	return slices.Clone(h.copies[key]), nil
}

// StartRelay keeps the limits (RelayLimits returns them) and answers the
// stats SetRelayStats set, running.
func (h *Host) StartRelay(_ context.Context, limits sdk.RelayLimits) (sdk.RelayStats, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.begin("StartRelay", ""); err != nil {
		return sdk.RelayStats{}, err
	}
	h.relay = &limits
	h.relayStat.Running = true
	return h.relayStat, nil
}

// RelayStatus answers the stats SetRelayStats set; Running once StartRelay ran.
func (h *Host) RelayStatus(context.Context) (sdk.RelayStats, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.begin("RelayStatus", ""); err != nil {
		return sdk.RelayStats{}, err
	}
	return h.relayStat, nil
}

// ReadFile reads a file AddFile or AddDir stored, unless Evict dropped it.
func (h *Host) ReadFile(_ context.Context, cid string, offset, length int64) (io.ReadCloser, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.begin("ReadFile", cid); err != nil {
		return nil, err
	}
	data, ok := h.files[cid]
	if !ok || h.evicted[cid] {
		return nil, notFound("content %s: not found", cid)
	}
	if offset < 0 || offset > int64(len(data)) {
		return nil, status.Errorf(codes.InvalidArgument, "offset %d past the end", offset)
	}
	end := int64(len(data))
	if length > 0 {
		end = min(end, offset+length)
	}
	h.bytesRead += end - offset
	return io.NopCloser(bytes.NewReader(data[offset:end])), nil
}

// NodeConfig decodes what SetConfig set for key into v.
func (h *Host) NodeConfig(_ context.Context, key string, v any) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.begin("NodeConfig", key); err != nil {
		return err
	}
	data, ok := h.config[key]
	if !ok {
		return notFound("no config key %q", key)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("node config %s: %w", key, err)
	}
	return nil
}

// SetService records the service (Services returns them); an empty url
// removes it.
func (h *Host) SetService(_ context.Context, name, url string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.begin("SetService", name); err != nil {
		return err
	}
	if url == "" {
		delete(h.services, name)
	} else {
		h.services[name] = url
	}
	return nil
}

// CallRole runs what HandleRole set for role; a role without one is not running.
func (h *Host) CallRole(ctx context.Context, role, command string, args ...string) (json.RawMessage, error) {
	h.mu.Lock()
	err := h.begin("CallRole", role)
	fn := h.roles[role]
	h.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if fn == nil {
		return nil, status.Errorf(codes.NotFound, "role %s is not running", role)
	}
	out, err := fn(ctx, command, args)
	if err != nil {
		return nil, fmt.Errorf("role %s: %s: %w", role, command, err)
	}
	return json.Marshal(out)
}

// DataDir is a temporary directory of the test.
func (h *Host) DataDir() string { return h.dataDir }

// PeerID is PeerID, or what SetPeerID set.
func (h *Host) PeerID() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.peerID
}

// Logger keeps what is logged in memory (Logs returns it), so that a role
// logging after its test ended does not fail it.
func (h *Host) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(logWriter{h}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type logWriter struct{ h *Host }

func (w logWriter) Write(p []byte) (int, error) {
	w.h.mu.Lock()
	defer w.h.mu.Unlock()
	w.h.logs = append(w.h.logs, strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// Gauge sets a gauge (GaugeValue returns it).
func (h *Host) Gauge(name, _ string, v float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gauges[name] = v
}

// CounterAdd adds to a counter (CounterValue returns it).
func (h *Host) CounterAdd(name, _ string, v float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.counters[name] += v
}
