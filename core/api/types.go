package api

import (
	"encoding/json"
	"time"

	"github.com/avnode/avnode/core/fault"
)

// The control API's requests and answers, as they travel: the JSON field
// names are stable (scripts and tests parse `--json` output, which prints
// these). The daemon converts its domain types to them; the CLI decodes
// them. Query parameters are named in each handler's comment.

// ErrorBody is a failed call's answer: the message and what kind of
// failure it is (see core/fault), so a client can act on the kind.
type ErrorBody struct {
	Message string     `json:"error"`
	Kind    fault.Kind `json:"kind,omitempty"`
}

// Info is what `avnode id` shows (GET /v1/id).
type Info struct {
	PeerID string   `json:"peer_id"`
	Addrs  []string `json:"addrs"`
	Agent  string   `json:"agent"`
	Roles  []string `json:"roles"` // enabled, from the config or at run time
	// RoleStates says how each enabled role is doing: running, backoff…
	RoleStates   map[string]string `json:"role_states"`
	Reachability string            `json:"reachability"`
	RelayAddrs   []string          `json:"relay_addrs"` // /p2p-circuit addresses held through relay reservations
	DHTMode      string            `json:"dht_mode"`
	Uptime       string            `json:"uptime"`
	// Gateway is the receiver role's HTTP gateway URL, when it runs.
	Gateway string `json:"gateway,omitempty"`
	// Services are what roles run for users, by name (gateway among them).
	Services map[string]string `json:"services"`
	// Metrics is the Prometheus endpoint, when metrics are on.
	Metrics string `json:"metrics,omitempty"`
	// Dashboard is the local dashboard's address, when it is on
	// (`avnode dashboard` opens it).
	Dashboard string `json:"dashboard,omitempty"`
}

// ConfigReload is what a running node did with its config read again
// (`avnode config set`, POST /v1/config/reload): the changed keys it
// applied at once, and those that take a restart.
type ConfigReload struct {
	Applied   []string `json:"applied"`
	AtRestart []string `json:"at_restart"`
	// The roles a change of roles, role_config or gateway.listen started,
	// stopped or restarted (with their config as the file says now).
	RolesStarted   []string `json:"roles_started,omitempty"`
	RolesStopped   []string `json:"roles_stopped,omitempty"`
	RolesRestarted []string `json:"roles_restarted,omitempty"`
}

// VersionInfo is what `avnode version` shows (GET /v1/version).
type VersionInfo struct {
	Version    string `json:"version"`               // the release, with the commit as build metadata
	Commit     string `json:"commit,omitempty"`      // the commit built from, when the build knows it
	CommitTime string `json:"commit_time,omitempty"` // RFC 3339
	Modified   bool   `json:"modified,omitempty"`    // built with uncommitted changes
	Go         string `json:"go"`
	OS         string `json:"os"`
	Arch       string `json:"arch"`
	DHTPrefix  string `json:"dht_protocol_prefix,omitempty"`
}

// PeerInfo is one connected peer (GET /v1/peers).
type PeerInfo struct {
	ID        string   `json:"peer_id"`
	Addrs     []string `json:"addrs"`
	Direction string   `json:"direction"`
	Agent     string   `json:"agent,omitempty"`
	Latency   string   `json:"latency,omitempty"`
	// Relayed: every connection to the peer goes through a circuit relay.
	Relayed bool `json:"relayed,omitempty"`
}

// FindPeerResult is what `avnode routing findpeer` shows.
type FindPeerResult struct {
	PeerID string   `json:"peer_id"`
	Addrs  []string `json:"addrs"`
}

// RoutingValue is what `avnode routing get|put` shows.
type RoutingValue struct {
	Key   string `json:"key"`
	Value []byte `json:"value"`
}

// ClaimResult is what `avnode name claim` shows.
type ClaimResult struct {
	Name string `json:"name"`
	Key  string `json:"key"`
	// Holders is how many of the closest peers now hold the claim as the
	// name's owner, of Asked.
	Holders int `json:"holders"`
	Asked   int `json:"asked"`
	// Certified: a majority of the name's holders (and at least
	// names.claim_quorum) hold this claim, so the name is this key's.
	Certified bool     `json:"certified"`
	Refusals  []string `json:"refusals,omitempty"`
	MintTime  string   `json:"mint_time"`
	// Resumed: the network held this key's claim already, and the call
	// finished setting the name up on the node instead of minting.
	Resumed bool `json:"resumed,omitempty"`
}

// ZoneInfo is a name's zone, as `avnode record set|rm|ls` show it.
type ZoneInfo struct {
	Name    string       `json:"name"`
	Key     string       `json:"key"`
	Seq     uint64       `json:"seq"`
	Expires time.Time    `json:"expires"`
	TTL     string       `json:"ttl"`
	Records []RecordInfo `json:"records"`
}

// RecordInfo is one record of a zone.
type RecordInfo struct {
	Type  string `json:"type"`
	Label string `json:"label"`
	Value string `json:"value"`
}

// Resolution is what `avnode resolve --json` prints.
type Resolution struct {
	Name string `json:"name"`
	// Key is the name's current key; KeyType is Ed25519 or
	// Ed25519+ML-DSA-65; Rotations counts its key changes since the claim.
	Key       string       `json:"key"`
	KeyType   string       `json:"key_type"`
	Rotations int          `json:"rotations"`
	Seq       uint64       `json:"seq"`
	Expires   time.Time    `json:"expires"`
	Records   []RecordInfo `json:"records"`
	Hosts     []HostInfo   `json:"hosts"`
	Root      string       `json:"root"`
	// Via lists the CNAME chain followed, if any.
	Via []string `json:"via,omitempty"`
	// Estates are the estates the name's HOST records name, each with the
	// machines its record names now (they are among Hosts).
	Estates []EstateInfo `json:"estates,omitempty"`
	// Copies are the peers that attested to holding this version (mirrors).
	Copies []string `json:"copies,omitempty"`
	// CopiesWanted is the owner's replication target (TXT copies=N).
	CopiesWanted int `json:"copies_wanted,omitempty"`
	// Through is the peer that handed the node this zone (a satellite's
	// beacon); empty when the node resolved it itself.
	Through string `json:"through,omitempty"`
	// Disputed says, on the resolve that first learned the name's owner,
	// that some of its closest holders named another key: who held what.
	Disputed string `json:"disputed,omitempty"`
	// SignedZone and SignedClaim are the signed records the answer comes
	// from, for roles that hand them on; `resolve --json` does not print them.
	SignedZone  []byte `json:"-"`
	SignedClaim []byte `json:"-"`
}

// EstateInfo is an estate as a resolve found it.
type EstateInfo struct {
	ID       string    `json:"id"`
	Seq      uint64    `json:"seq,omitempty"`
	Hosts    []string  `json:"hosts"`
	Provider string    `json:"provider,omitempty"`
	Expires  time.Time `json:"expires,omitzero"`
	Error    string    `json:"error,omitempty"`
}

// Estate is an estate whose key this node holds (`avnode estate ls`).
type Estate struct {
	ID       string   `json:"id"`
	Label    string   `json:"label"`
	Seq      uint64   `json:"seq"`
	TTL      string   `json:"ttl"`
	Hosts    []string `json:"hosts"`
	Provider string   `json:"provider,omitempty"`
	// Names are the avatar names published onto the estate here.
	Names []string `json:"names"`
	// Replication, with `estate ls --replication`: for each name, the
	// machines serving it now, its hosts and the mirrors attesting a copy.
	Replication map[string]int `json:"replication,omitempty"`
	// Retired says why this node no longer hosts the estate: a newer
	// record names other machines.
	Retired string `json:"retired,omitempty"`
	// Pinned is, after an import, how many of Names' content this node
	// fetched and pinned; Problems says what it could not.
	Pinned   int      `json:"pinned,omitempty"`
	Problems []string `json:"problems,omitempty"`
}

// EstateExport is a sealed estate, as `avnode estate export` writes it.
type EstateExport struct {
	Estate Estate `json:"estate"`
	Sealed []byte `json:"sealed"`
}

// EstateSealing is the body of export and import: the secret that seals
// or opens the file (never in a URL).
type EstateSealing struct {
	Passphrase string `json:"passphrase,omitempty"`
	Recipient  string `json:"recipient,omitempty"`
	Identity   string `json:"identity,omitempty"`
	Sealed     []byte `json:"sealed,omitempty"`
}

// HostInfo is one machine hosting a name, with its current addresses.
type HostInfo struct {
	PeerID string   `json:"peer_id"`
	Addrs  []string `json:"addrs"`
}

// Progress is one progress line of a streamed publish or get.
type Progress struct {
	Phase  string `json:"phase"` // "import", "fetch", or a claim's "work"
	Bytes  int64  `json:"bytes"`
	Blocks int    `json:"blocks,omitempty"` // fetched or present so far
	Of     int    `json:"of,omitempty"`     // blocks known so far in the DAG
	// A claim's proof of work: hashes tried so far, and how many it takes
	// on average (any one claim may take several times that).
	Tried    uint64 `json:"tried,omitempty"`
	Expected uint64 `json:"expected,omitempty"`
}

// PublishResult is what `avnode publish` shows.
type PublishResult struct {
	Root      string `json:"root"`
	Name      string `json:"name,omitempty"`
	Seq       uint64 `json:"seq,omitempty"`
	Files     int    `json:"files"`
	Dirs      int    `json:"dirs"`
	Blocks    int    `json:"blocks"`
	NewBlocks int    `json:"new_blocks"`
	Bytes     int64  `json:"bytes"`
	Provided  bool   `json:"provided"`
}

// GetResult is what `avnode get` shows.
type GetResult struct {
	Target  string     `json:"target"`
	Root    string     `json:"root"`
	CID     string     `json:"cid"`
	Kind    string     `json:"kind"` // "file" or "dir"
	Size    int64      `json:"size"`
	Output  string     `json:"output,omitempty"`
	Entries []Entry    `json:"entries,omitempty"`
	Stats   FetchStats `json:"stats"`
	// Through is the peer that fetched it for this node (a satellite's
	// beacon); empty when the node fetched it itself.
	Through string `json:"through,omitempty"`
}

// Entry is one entry of a fetched directory.
type Entry struct {
	Name string `json:"name"`
	CID  string `json:"cid"`
	Kind string `json:"kind"` // "file" or "dir"
	Size int64  `json:"size"` // file bytes, for a directory all of them below it
}

// FetchStats says where a get's blocks came from.
type FetchStats struct {
	Blocks  int            `json:"blocks"`            // blocks in the DAG
	Present int            `json:"present"`           // already here (a resumed fetch skips them)
	Fetched int            `json:"fetched"`           // pulled from the network
	Bytes   int64          `json:"bytes"`             // bytes pulled
	Sources map[string]int `json:"sources"`           // blocks per source
	Dropped []string       `json:"dropped,omitempty"` // sources dropped, with the reason
}

// GCResult is what `avnode repo gc` shows.
type GCResult struct {
	Removed int   `json:"removed"`
	Freed   int64 `json:"freed_bytes"`
	Kept    int   `json:"kept"`
}

// RoleStatus is one line of `avnode roles`.
type RoleStatus struct {
	Name      string `json:"name"`
	State     string `json:"state"` // starting, running, backoff, failed, stopped, disabled, not installed
	PID       int    `json:"pid,omitempty"`
	Restarts  int    `json:"restarts"`
	Version   string `json:"version,omitempty"`
	LastError string `json:"last_error,omitempty"`
	Path      string `json:"path,omitempty"`
	// Capabilities are what the running plugin said it does.
	Capabilities []string `json:"capabilities,omitempty"`
	// MissingGrants are permissions the plugin asked for and was not
	// granted: its calls that need them are refused.
	MissingGrants []string `json:"missing_grants,omitempty"`
	// Sandbox is what confines the plugin process (plugins.sandbox).
	Sandbox string `json:"sandbox,omitempty"`
}

// RoleState is the answer to `avnode roles enable|disable`.
type RoleState struct {
	Role  string `json:"role"`
	State string `json:"state"`
	// MissingGrants: as in RoleStatus, known at enable from the plugin's
	// describe.
	MissingGrants []string `json:"missing_grants,omitempty"`
	// SavedIn is the config file the change was written to, so that it
	// lasts across restarts.
	SavedIn string `json:"saved_in,omitempty"`
}

// Grants is the answer to `avnode plugins grant|revoke`: the role's
// permissions now.
type Grants struct {
	Role    string   `json:"role"`
	Granted []string `json:"granted"`
}

// PluginInfo is one line of `avnode plugins ls`.
type PluginInfo struct {
	Role string `json:"role"`
	Path string `json:"path"`
}

// PluginDescription is what `avnode plugins describe` shows.
type PluginDescription struct {
	Name            string   `json:"name"`
	Version         string   `json:"version"`
	ProtocolVersion int      `json:"protocol_version"`
	Summary         string   `json:"summary"`
	Capabilities    []string `json:"capabilities"`
	ConfigSchema    string   `json:"config_schema"`
	Path            string   `json:"path"`
	// Permissions are what the plugin asks for; Granted what the operator
	// gave the role; MissingGrants what it asks for and was not given.
	Permissions   []string `json:"permissions"`
	Granted       []string `json:"granted"`
	MissingGrants []string `json:"missing_grants"`
}

// ScriptInfo is one loaded policy script (`avnode policy ls|reload`).
type ScriptInfo struct {
	Path      string    `json:"path"`
	SHA256    string    `json:"sha256"` // of the version in use
	Hooks     []string  `json:"hooks"`
	Warnings  []string  `json:"warnings,omitempty"`
	LoadedAt  time.Time `json:"loaded_at"`
	LastError string    `json:"last_error,omitempty"` // why the latest reload of this file failed; "" if it did not
}

// KeyStep is one rotation of a name's key.
type KeyStep struct {
	Index   int    `json:"index"`
	Kind    string `json:"kind"` // rotate or recover
	Key     string `json:"key"`
	KeyType string `json:"key_type"`
}

// KeyChain is a name's key history: what `avnode key recovery show`,
// `key rotate` and `name recover` show.
type KeyChain struct {
	Name        string    `json:"name"`
	Key         string    `json:"key"`
	KeyType     string    `json:"key_type"`
	Claimed     string    `json:"claimed"`
	Recovery    string    `json:"recovery"`
	RecoveryKey string    `json:"recovery_key,omitempty"`
	Steps       []KeyStep `json:"steps"`
	Seq         uint64    `json:"seq,omitempty"`
}

// DashboardLogin is what `avnode dashboard` prints: the page's address
// with a one-time code, and until when the code opens it.
type DashboardLogin struct {
	URL     string    `json:"url"`
	Expires time.Time `json:"expires"`
}

// Dashboard is the node as its local dashboard shows it, in one snapshot.
type Dashboard struct {
	Version string       `json:"version"`
	Node    Info         `json:"node"`
	Peers   []PeerInfo   `json:"peers"`
	Names   []OwnedName  `json:"names"`
	Roles   []RoleStatus `json:"roles"`
	// Mirror is the mirror role's `ls` (the names it keeps copies of),
	// when it runs.
	Mirror   json.RawMessage `json:"mirror,omitempty"`
	Content  ContentStats    `json:"content"`
	Refusals []Refusal       `json:"refusals"`
}

// OwnedName is a name the node owns and how republishing it goes.
type OwnedName struct {
	Name      string    `json:"name"`
	Key       string    `json:"key"`
	Seq       uint64    `json:"seq"`
	Expires   time.Time `json:"expires,omitzero"`
	Published time.Time `json:"published,omitzero"` // last zone put that reached the network, since start
	Error     string    `json:"error,omitempty"`    // why the latest attempt failed
	Health    string    `json:"health"`             // ok, failing, expired or pending
	// Copies are the peers that attested a copy of its zone (mirrors).
	Copies []string `json:"copies"`
}

// ContentStats is what the node's block store holds.
type ContentStats struct {
	Blocks   int   `json:"blocks"`
	Bytes    int64 `json:"bytes"`
	PinCount int   `json:"pin_count"`
	Pins     []Pin `json:"pins"` // the first ones, by CID
}

// Pin is a root kept from garbage collection, and why.
type Pin struct {
	CID    string `json:"cid"`
	Reason string `json:"reason"`
}

// Refusal is an allow/deny policy hook call that said no.
type Refusal struct {
	At     time.Time `json:"at"`
	Hook   string    `json:"hook"`
	Peer   string    `json:"peer,omitempty"`
	Script string    `json:"script,omitempty"`
	Reason string    `json:"reason"`
}
