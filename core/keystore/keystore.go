// Package keystore keeps a node's identity and estate keys as files in the
// repo's keystore folder, one per key, readable by the owner only. A private
// key never leaves this package except to sign in the same process: it is
// never printed, logged or sent.
package keystore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/avnode/avnode/core/fault"
	"github.com/avnode/avnode/core/idkey"
)

const (
	keySuffix = ".key"
	// tmpSuffix marks a key being written (writeNew); List skips it.
	tmpSuffix = ".tmp"
)

// ErrNotFound means no key has that name.
var ErrNotFound error = fault.New(fault.NotFound, "no such key")

// Store is a keystore folder.
type Store struct{ dir string }

// Open uses dir as a keystore; it must exist (repo.Init creates it).
func Open(dir string) (*Store, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("keystore %s: %w", dir, err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("keystore %s is not a directory", dir)
	}
	return &Store{dir: dir}, nil
}

// Key describes a stored key without its private part.
type Key struct {
	Name   string        `json:"name"`
	Type   string        `json:"type"`
	Public crypto.PubKey `json:"-"`
}

// CheckName refuses names that are not safe file names.
func CheckName(name string) error {
	if name == "" || len(name) > 64 || strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
		return fmt.Errorf("key name %q: use 1-64 lower-case letters, digits, '-' or '_'", name)
	}
	return nil
}

func (s *Store) path(name string) string { return filepath.Join(s.dir, name+keySuffix) }

// Generate makes a new Ed25519 key. It never replaces an existing key.
func (s *Store) Generate(name string) (Key, error) {
	return s.GenerateType(name, idkey.TypeEd25519)
}

// GenerateType makes a new key of a type idkey.ParseType returned: Ed25519,
// or the post-quantum hybrid Ed25519 + ML-DSA-65.
func (s *Store) GenerateType(name, typeName string) (Key, error) {
	if err := CheckName(name); err != nil {
		return Key{}, err
	}
	priv, err := idkey.Generate(typeName)
	if err != nil {
		return Key{}, fmt.Errorf("generate key %s: %w", name, err)
	}
	return s.Import(name, priv)
}

// Import stores priv under name, durably. It never replaces an existing key.
func (s *Store) Import(name string, priv crypto.PrivKey) (Key, error) {
	if err := CheckName(name); err != nil {
		return Key{}, err
	}
	data, err := idkey.MarshalPrivate(priv)
	if err != nil {
		return Key{}, fmt.Errorf("encode key %s: %w", name, err)
	}
	if err := s.writeNew(name, data); err != nil {
		return Key{}, err
	}
	return Key{Name: name, Type: idkey.TypeName(priv), Public: priv.GetPublic()}, nil
}

// writeNew stores a new key file whole or not at all: the bytes go to a
// temporary file, synced, then linked under the key's name, which fails if
// the name is taken. A daemon listing the keys while `avnode key gen` runs
// never reads half a key.
func (s *Store) writeNew(name string, data []byte) error {
	tmp, err := os.CreateTemp(s.dir, ".new-*"+tmpSuffix)
	if err != nil {
		return fmt.Errorf("store key %s: %w", name, err)
	}
	defer os.Remove(tmp.Name())
	if err = writeSynced(tmp, data); err == nil {
		err = link(tmp.Name(), s.path(name))
		if err != nil && !errors.Is(err, os.ErrExist) {
			// A file system without hard links: write in place, the
			// name still taken only if free.
			err = writeInPlace(s.path(name), data)
		}
	}
	if errors.Is(err, os.ErrExist) {
		return fault.Errorf(fault.Refused, "key %s already exists; choose another name", name)
	}
	if err != nil {
		return fmt.Errorf("store key %s: %w", name, err)
	}
	return syncDir(s.dir)
}

// link is os.Link; a unit test makes it fail as on a file system
// without hard links.
var link = os.Link

// writeInPlace creates path, refusing an existing one, and writes data to
// it, synced; a failed write leaves no file behind.
func writeInPlace(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := writeSynced(f, data); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// writeSynced writes data to f, syncs and closes it, and returns the first
// error of the three.
func writeSynced(f *os.File, data []byte) error {
	_, err := f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir makes a new name in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("keystore %s: %w", dir, err)
	}
	return nil
}

// Sub is the keystore folder dir/name, made if missing: estate keys live
// in "estates", apart from identity keys.
func (s *Store) Sub(name string) (*Store, error) {
	dir := filepath.Join(s.dir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("keystore %s: %w", dir, err)
	}
	return &Store{dir: dir}, nil
}

// Private loads a key for signing.
func (s *Store) Private(name string) (crypto.PrivKey, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(s.path(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("key %s: %w; create it with `avnode key gen %s`", name, ErrNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", name, err)
	}
	priv, err := idkey.UnmarshalPrivate(data)
	if err != nil {
		return nil, fmt.Errorf("key %s is damaged (%v); restore it from a backup", name, err)
	}
	return priv, nil
}

// List returns every key, sorted by name. Damaged files are reported, not skipped.
func (s *Store) List() ([]Key, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("keystore %s: %w", s.dir, err)
	}
	var keys []Key
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), keySuffix)
		if !ok || e.IsDir() {
			continue
		}
		priv, err := s.Private(name)
		if err != nil {
			return nil, err
		}
		keys = append(keys, Key{Name: name, Type: idkey.TypeName(priv), Public: priv.GetPublic()})
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].Name < keys[j].Name })
	return keys, nil
}

// Find returns the stored key whose public key is pub.
func (s *Store) Find(pub crypto.PubKey) (string, crypto.PrivKey, error) {
	keys, err := s.List()
	if err != nil {
		return "", nil, err
	}
	for _, k := range keys {
		if k.Public.Equals(pub) {
			priv, err := s.Private(k.Name)
			return k.Name, priv, err
		}
	}
	return "", nil, ErrNotFound
}
