package naming

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"filippo.io/age"
	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/avnode/avnode/core/fault"
	"github.com/avnode/avnode/core/keystore"
	"github.com/avnode/avnode/core/names"
)

// estatePrefix holds, under /names, each estate this node hosts or hosted.
var estatePrefix = ds.NewKey("/estate")

// DefaultEstateTTL is how long resolvers cache an estate record: how long
// a move can take to reach a resolver that looked the estate up before.
const DefaultEstateTTL = time.Minute

// estateLookupWait bounds an import's look at the estate's current record.
const estateLookupWait = 10 * time.Second

// HostedEstate is an estate whose key this node holds.
type HostedEstate struct {
	ID       string   `json:"id"`
	Label    string   `json:"label"`
	Seq      uint64   `json:"seq"`
	TTL      string   `json:"ttl"`
	Hosts    []string `json:"hosts"`
	Provider string   `json:"provider,omitempty"`
	// Names are the avatar names published here onto the estate; a move
	// takes them along so the new machine serves their content.
	Names []string `json:"names"`
	// Retired: a newer record of the estate names other machines (it was
	// imported elsewhere); this node no longer publishes it.
	Retired string `json:"retired,omitempty"`
}

func (h *HostedEstate) ttl() time.Duration {
	d, err := time.ParseDuration(h.TTL)
	if err != nil || d <= 0 {
		return DefaultEstateTTL
	}
	return d
}

func (s *Service) estateKeys() (*keystore.Store, error) { return s.keys.Sub("estates") }

// CreateEstate makes an estate key labelled label and publishes the
// estate's first record, naming this machine (and provider, a .node name,
// if given).
func (s *Service) CreateEstate(ctx context.Context, label, provider string, ttl time.Duration) (*HostedEstate, error) {
	keys, err := s.estateKeys()
	if err != nil {
		return nil, err
	}
	if err := keystore.CheckName(label); err != nil {
		return nil, fault.Errorf(fault.Invalid, "estate %w", err)
	}
	if ttl <= 0 {
		ttl = DefaultEstateTTL
	}
	if ttl > names.MaxEstateTTL {
		return nil, fault.Errorf(fault.Invalid, "--ttl %s: at most %s", ttl, names.MaxEstateTTL)
	}
	if err := checkProvider(provider); err != nil {
		return nil, err
	}
	k, err := keys.Generate(label)
	if err != nil {
		return nil, err
	}
	h := &HostedEstate{ID: names.KeyID(k.Public), Label: label, TTL: ttl.String(), Provider: provider, Names: []string{}}
	return h, s.publishEstate(ctx, h, 1)
}

func checkProvider(provider string) error {
	if provider == "" {
		return nil
	}
	n, err := names.Parse(provider)
	if err != nil || !n.IsRegistered() || n.Topic() != names.ProviderTopic {
		return fault.Errorf(fault.Invalid, "--provider %q: give a .%s name, such as acme.%s", provider, names.ProviderTopic, names.ProviderTopic)
	}
	return nil
}

// publishEstate signs version seq of the estate, naming this machine, puts
// it in the DHT and keeps it as hosted.
func (s *Service) publishEstate(ctx context.Context, h *HostedEstate, seq uint64) error {
	keys, err := s.estateKeys()
	if err != nil {
		return err
	}
	priv, err := keys.Private(h.Label)
	if err != nil {
		return err
	}
	if seq > names.MaxEstateSeq {
		return fault.Errorf(fault.Refused, "estate %s: its record is at the highest sequence an estate may have, so the key has been used elsewhere; create a new estate and point the zone at it", h.ID)
	}
	lifetime := min(s.cfg.Names.ZoneLifetime.D(), names.MaxEstateLifetime)
	e := &names.Estate{Seq: seq, Expiry: time.Now().Add(lifetime).Truncate(time.Second),
		TTL: h.ttl().Truncate(time.Second), Hosts: []peer.ID{s.host.ID()}, Provider: h.Provider}
	signed, err := e.Sign(priv)
	if err != nil {
		return err
	}
	h.Seq, h.Hosts, h.Retired = seq, []string{s.host.ID().String()}, ""
	if err := s.saveEstate(ctx, h); err != nil {
		return err
	}
	s.cacheEstate(e)
	if err := s.putValue(ctx, names.EstateKey(h.ID), signed); err != nil {
		return fmt.Errorf("estate %s: put: %w", h.ID, err)
	}
	return nil
}

func (s *Service) saveEstate(ctx context.Context, h *HostedEstate) error {
	b, _ := json.Marshal(h)
	if err := s.store.Put(ctx, estatePrefix.ChildString(h.ID), b); err != nil {
		return fmt.Errorf("estate %s: keep: %w", h.ID, err)
	}
	return nil
}

// HostedEstates lists the estates whose keys this node holds, by label.
func (s *Service) HostedEstates(ctx context.Context) ([]HostedEstate, error) {
	results, err := s.store.Query(ctx, dsq.Query{Prefix: estatePrefix.String()})
	if err != nil {
		return nil, err
	}
	entries, err := results.Rest()
	if err != nil {
		return nil, err
	}
	out := []HostedEstate{}
	for _, e := range entries {
		var h HostedEstate
		if json.Unmarshal(e.Value, &h) == nil {
			out = append(out, h)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Label < out[j].Label })
	return out, nil
}

// HostedEstate finds a hosted estate by its ID or label.
func (s *Service) HostedEstate(ctx context.Context, idOrLabel string) (*HostedEstate, error) {
	all, err := s.HostedEstates(ctx)
	if err != nil {
		return nil, err
	}
	for _, h := range all {
		if h.ID == idOrLabel || h.Label == idOrLabel {
			return &h, nil
		}
	}
	return nil, fault.Errorf(fault.NotFound, "no estate %q on this node; `avnode estate ls` lists them", idOrLabel)
}

// AddEstateName records that name is published onto the estate here.
func (s *Service) AddEstateName(ctx context.Context, estate string, name names.Name) error {
	h, err := s.HostedEstate(ctx, estate)
	if err != nil {
		return err
	}
	if h.Retired != "" {
		return fault.Errorf(fault.Refused, "estate %s was moved away (%s); publish on the machine that hosts it now", h.ID, h.Retired)
	}
	if !slices.Contains(h.Names, name.String()) {
		h.Names = append(h.Names, name.String())
		sort.Strings(h.Names)
	}
	return s.saveEstate(ctx, h)
}

// republishEstates re-signs each hosted estate with a fresh expiry, unless
// a newer record names other machines: then the estate moved, and this
// node retires its copy.
func (s *Service) republishEstates(ctx context.Context) {
	hosted, err := s.HostedEstates(ctx)
	if err != nil {
		s.log.Warn("republish estates: list", "err", err)
		return
	}
	for i := range hosted {
		h := &hosted[i]
		if h.Retired != "" {
			continue
		}
		if err := s.republishEstate(ctx, h); err != nil {
			s.log.Warn("republish estate failed", "estate", h.ID, "err", err)
		}
	}
}

func (s *Service) republishEstate(ctx context.Context, h *HostedEstate) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if data, err := s.dht.GetValue(ctx, names.EstateKey(h.ID)); err == nil {
		if e, err := (names.EstateValidator{}).DecodeValid(names.EstateKey(h.ID), data); err == nil && e.Seq > h.Seq && !slices.Contains(e.Hosts, s.host.ID()) {
			h.Retired = fmt.Sprintf("seq %d names %v", e.Seq, e.Hosts)
			s.cacheEstate(e)
			s.log.Info("estate moved to other machines; retired here", "estate", h.ID, "seq", e.Seq, "hosts", e.Hosts)
			return s.saveEstate(ctx, h)
		}
	}
	return s.publishEstate(ctx, h, h.Seq)
}

// estateFile is what `avnode estate export` seals: the key and what the
// next machine needs to take the estate over.
type estateFile struct {
	Format   string   `json:"format"`
	Label    string   `json:"label"`
	Key      []byte   `json:"key"` // libp2p private key encoding
	Seq      uint64   `json:"seq"`
	TTL      string   `json:"ttl"`
	Provider string   `json:"provider,omitempty"`
	Names    []string `json:"names"`
}

const estateFileFormat = "avnode-estate/1"

const (
	scryptWorkFactor = 18     // age's default: 256 MiB, about a second
	maxEstateNames   = 10_000 // names one estate file may carry
)

// Sealing says how an estate file is sealed or opened: with a passphrase
// (scrypt) or to an age recipient (age1…) and with its identity (AGE-SECRET-KEY-1…).
type Sealing struct {
	Passphrase string
	Recipient  string
	Identity   string
}

// ExportEstate seals the estate's key and state. The estate stays hosted
// here until the machine that imports it publishes a newer record.
func (s *Service) ExportEstate(ctx context.Context, idOrLabel string, seal Sealing) ([]byte, *HostedEstate, error) {
	h, err := s.HostedEstate(ctx, idOrLabel)
	if err != nil {
		return nil, nil, err
	}
	keys, err := s.estateKeys()
	if err != nil {
		return nil, nil, err
	}
	priv, err := keys.Private(h.Label)
	if err != nil {
		return nil, nil, err
	}
	raw, err := crypto.MarshalPrivateKey(priv)
	if err != nil {
		return nil, nil, err
	}
	var recipient age.Recipient
	switch {
	case seal.Recipient != "":
		if recipient, err = age.ParseX25519Recipient(seal.Recipient); err != nil {
			return nil, nil, fault.Errorf(fault.Invalid, "--to %q: %v; give an age recipient (age1…)", seal.Recipient, err)
		}
	case seal.Passphrase != "":
		scrypt, err := age.NewScryptRecipient(seal.Passphrase)
		if err != nil {
			return nil, nil, fault.Errorf(fault.Invalid, "passphrase: %v", err)
		}
		scrypt.SetWorkFactor(scryptWorkFactor)
		recipient = scrypt
	default:
		return nil, nil, fault.New(fault.Invalid, "estate export needs a passphrase (--passphrase-file) or a recipient (--to age1…)")
	}
	body, _ := json.Marshal(estateFile{Format: estateFileFormat, Label: h.Label, Key: raw, Seq: h.Seq, TTL: h.TTL,
		Provider: h.Provider, Names: h.Names})
	var out bytes.Buffer
	armor := &out
	w, err := age.Encrypt(armor, recipient)
	if err != nil {
		return nil, nil, err
	}
	if _, err := w.Write(body); err != nil {
		return nil, nil, err
	}
	if err := w.Close(); err != nil {
		return nil, nil, err
	}
	return out.Bytes(), h, nil
}

// ImportEstate opens a sealed estate, keeps its key and publishes a newer
// record naming this machine: resolvers follow here within the record's
// TTL, and the machine it came from retires its copy when it sees it. The
// names it carries come along; the caller fetches their content.
func (s *Service) ImportEstate(ctx context.Context, sealed []byte, seal Sealing) (*HostedEstate, error) {
	var identity age.Identity
	var err error
	switch {
	case seal.Identity != "":
		if identity, err = age.ParseX25519Identity(strings.TrimSpace(seal.Identity)); err != nil {
			return nil, fault.Errorf(fault.Invalid, "identity: %v; give an age identity (AGE-SECRET-KEY-1…)", err)
		}
	case seal.Passphrase != "":
		scrypt, err := age.NewScryptIdentity(seal.Passphrase)
		if err != nil {
			return nil, fault.Errorf(fault.Invalid, "passphrase: %v", err)
		}
		// A crafted file could ask for 4 GiB of scrypt work; what export
		// writes asks for 256 MiB.
		scrypt.SetMaxWorkFactor(scryptWorkFactor)
		identity = scrypt
	default:
		return nil, fault.New(fault.Invalid, "estate import needs the passphrase (--passphrase-file) or the identity (--identity FILE) it was sealed with")
	}
	s.importMu.Lock() // one at a time: each may cost a scrypt
	defer s.importMu.Unlock()
	r, err := age.Decrypt(bytes.NewReader(sealed), identity)
	if err != nil {
		return nil, fault.Errorf(fault.Invalid, "open the estate file: %v (wrong passphrase or identity, or not an estate file)", err)
	}
	body, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return nil, fault.Errorf(fault.Invalid, "open the estate file: %v", err)
	}
	var f estateFile
	if err := json.Unmarshal(body, &f); err != nil || f.Format != estateFileFormat {
		return nil, fault.New(fault.Invalid, "the file is sealed but is not an avnode estate file")
	}
	if len(f.Names) > maxEstateNames {
		return nil, fault.Errorf(fault.Invalid, "the estate file lists %d names, more than %d", len(f.Names), maxEstateNames)
	}
	priv, err := crypto.UnmarshalPrivateKey(f.Key)
	if err != nil {
		return nil, fault.Errorf(fault.Invalid, "the estate file's key: %v", err)
	}
	id := names.KeyID(priv.GetPublic())
	if old, err := s.HostedEstate(ctx, id); err == nil && old.Retired == "" {
		return nil, fault.Errorf(fault.Refused, "estate %s (%s) is hosted here already", id, old.Label)
	}
	keys, err := s.estateKeys()
	if err != nil {
		return nil, err
	}
	label, err := s.importKey(keys, f.Label, priv)
	if err != nil {
		return nil, err
	}
	// A newer record than the file's means the estate moved since it was
	// exported; the next version must beat it. The lookup is bounded: the
	// machine the estate comes from may be dead, and slow to fail.
	seq := f.Seq
	lookup, cancel := context.WithTimeout(ctx, estateLookupWait)
	if e, err := s.Estate(lookup, id); err == nil && e.Seq > seq {
		seq = e.Seq
	}
	cancel()
	h := &HostedEstate{ID: id, Label: label, TTL: f.TTL, Provider: f.Provider, Names: f.Names}
	if h.Names == nil {
		h.Names = []string{}
	}
	return h, s.publishEstate(ctx, h, seq+1)
}

// importKey stores priv under label, or label-2, -3… when another key has
// the label here; the same key is kept as it is.
func (s *Service) importKey(keys *keystore.Store, label string, priv crypto.PrivKey) (string, error) {
	for i := 1; i < 100; i++ {
		try := label
		if i > 1 {
			try = fmt.Sprintf("%s-%d", label, i)
		}
		if have, err := keys.Private(try); err == nil {
			if have.Equals(priv) {
				return try, nil
			}
			continue
		}
		if _, err := keys.Import(try, priv); err != nil {
			if fault.KindOf(err) == fault.Refused { // a damaged key file holds the label
				continue
			}
			return "", err
		}
		return try, nil
	}
	return "", fault.Errorf(fault.Refused, "estate label %s: too many keys of that label here", label)
}
