// Package repo owns a node's directory on disk: its config file, node key,
// keystore, datastore and the lock that lets one process use it at a time.
// It never talks to the network.
//
// Layout of a repo (default ~/.avnode, or AVNODE_REPO, or --repo):
//
//	config.yaml   the node's config, written from the embedded defaults
//	node.key      the node's Ed25519 libp2p key (0600)
//	keystore/     identity and estate keys (0700, files 0600)
//	datastore/    LevelDB behind go-datastore: DHT records and node state
//	blocks/       content blocks, one file each (created on first run)
//	repo.lock     held while a process has the repo open
//	api.sock      the running daemon's control API (0600)
//	api.token     the token every control API call carries (0600; core/api)
package repo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	ds "github.com/ipfs/go-datastore"
	leveldb "github.com/ipfs/go-ds-leveldb"
	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/avnode/avnode/core/config"
)

// Names of the files and folders inside a repo.
const (
	ConfigFile   = "config.yaml"
	NodeKeyFile  = "node.key"
	KeystoreDir  = "keystore"
	DatastoreDir = "datastore"
	BlocksDir    = "blocks"
	LockFile     = "repo.lock"
	SocketFile   = "api.sock"
	VersionFile  = "version"
	version      = "1"
)

// ErrNotInitialized means the directory holds no repo yet.
var ErrNotInitialized = errors.New("repo not initialized")

// DefaultDir is where the repo lives when no --repo is given: AVNODE_REPO,
// else ~/.avnode.
func DefaultDir() string {
	if dir := os.Getenv("AVNODE_REPO"); dir != "" {
		return dir
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".avnode"
	}
	return filepath.Join(home, ".avnode")
}

// IsInitialized reports whether dir holds a repo.
func IsInitialized(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, VersionFile))
	return err == nil
}

// Init creates a new repo in dir, which must not exist or be empty. On any
// failure it removes what it created, so a half-made repo is never left.
func Init(dir string) (err error) {
	if IsInitialized(dir) {
		return fmt.Errorf("init %s: a repo already exists there; run `avnode run --repo %s`, or choose another --repo", dir, dir)
	}
	created, err := makeEmptyDir(dir)
	if err != nil {
		return fmt.Errorf("init %s: %w", dir, err)
	}
	defer func() {
		if err != nil {
			cleanupInit(dir, created)
		}
	}()
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return fmt.Errorf("init %s: generate node key: %w", dir, err)
	}
	keyBytes, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		return fmt.Errorf("init %s: encode node key: %w", dir, err)
	}
	steps := []func() error{
		func() error { return os.WriteFile(filepath.Join(dir, NodeKeyFile), keyBytes, 0o600) },
		func() error { return os.Mkdir(filepath.Join(dir, KeystoreDir), 0o700) },
		func() error { return os.WriteFile(filepath.Join(dir, ConfigFile), config.DefaultYAML(), 0o600) },
		func() error { return initDatastore(dir) },
		// The version file goes last: its presence means the repo is complete.
		func() error { return os.WriteFile(filepath.Join(dir, VersionFile), []byte(version+"\n"), 0o600) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return fmt.Errorf("init %s: %w", dir, err)
		}
	}
	return nil
}

// makeEmptyDir creates dir (0700) or accepts an existing empty one. It
// reports whether it created the directory itself.
func makeEmptyDir(dir string) (bool, error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return true, os.MkdirAll(dir, 0o700)
	case err != nil:
		return false, err
	case len(entries) > 0:
		return false, fmt.Errorf("directory is not empty and holds no repo; choose an empty or new --repo")
	}
	return false, os.Chmod(dir, 0o700)
}

func cleanupInit(dir string, createdDir bool) {
	if createdDir {
		os.RemoveAll(dir)
		return
	}
	for _, name := range []string{NodeKeyFile, KeystoreDir, ConfigFile, DatastoreDir, VersionFile} {
		os.RemoveAll(filepath.Join(dir, name))
	}
}

// datastoreOptions size LevelDB for what the datastore holds: small records
// (blocks are files of their own). Its default 4 MiB write buffer is
// allocated whole at open and was a quarter of an idle node's heap; 256 KiB
// still takes hundreds of records (a zone is about 0.5 KB) between flushes.
var datastoreOptions = &leveldb.Options{WriteBuffer: 256 << 10}

func initDatastore(dir string) error {
	store, err := leveldb.NewDatastore(filepath.Join(dir, DatastoreDir), datastoreOptions)
	if err != nil {
		return fmt.Errorf("create datastore: %w", err)
	}
	return store.Close()
}

// Repo is an open, locked repo.
type Repo struct {
	Dir     string
	NodeKey crypto.PrivKey
	// Datastore syncs each write to disk before it returns: for what the
	// node cannot get back from the network (its own names and zones, the
	// claims it pinned, high-water marks).
	Datastore ds.Batching
	// Unsynced is the same store, its writes not synced: for the DHT's
	// records and provider records held for others (see unsynced).
	Unsynced ds.Batching
	lock     *os.File
}

// Open locks the repo in dir, loads the node key and opens the datastore.
// A second Open of the same repo, from this or another process, fails.
func Open(dir string) (*Repo, error) {
	if !IsInitialized(dir) {
		return nil, fmt.Errorf("open %s: %w; create it with `avnode init --repo %s`", dir, ErrNotInitialized, dir)
	}
	lock, err := acquireLock(dir)
	if err != nil {
		return nil, err
	}
	r := &Repo{Dir: dir, lock: lock}
	if r.NodeKey, err = LoadNodeKey(dir); err != nil {
		r.releaseLock()
		return nil, err
	}
	store, err := leveldb.NewDatastore(filepath.Join(dir, DatastoreDir), datastoreOptions)
	if err != nil {
		r.releaseLock()
		return nil, fmt.Errorf("open %s: datastore: %w", dir, err)
	}
	r.Datastore = store
	r.Unsynced = unsynced{store}
	return r, nil
}

// LoadNodeKey reads the node key and refuses one that others can read.
func LoadNodeKey(dir string) (crypto.PrivKey, error) {
	path := filepath.Join(dir, NodeKeyFile)
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("node key %s: %w", path, err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("node key %s has mode %04o: others can read it; run `chmod 600 %s`", path, info.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("node key %s: %w", path, err)
	}
	key, err := crypto.UnmarshalPrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("node key %s is damaged (%v); restore it from a backup", path, err)
	}
	return key, nil
}

// acquireLock takes an exclusive flock on repo.lock. The kernel drops the
// lock when the process dies, so a crash never leaves the repo locked.
func acquireLock(dir string) (*os.File, error) {
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		pid := strings.TrimSpace(string(holder))
		if pid == "" {
			pid = "unknown"
		}
		return nil, fmt.Errorf("repo %s is in use by another avnode process (pid %s); stop it first or choose another --repo", dir, pid)
	}
	f.Truncate(0)
	f.WriteString(strconv.Itoa(os.Getpid()) + "\n")
	return f, nil
}

// InUse reports whether a process holds dir's repo, and its pid.
func InUse(dir string) (pid string, inUse bool) {
	f, err := os.Open(filepath.Join(dir, LockFile))
	if err != nil {
		return "", false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(f.Name())
		if pid = strings.TrimSpace(string(holder)); pid == "" {
			pid = "unknown"
		}
		return pid, true
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return "", false
}

func (r *Repo) releaseLock() {
	if r.lock == nil {
		return
	}
	// Remove before unlocking so that a racing Open never sees our stale pid.
	os.Remove(r.lock.Name())
	r.lock.Close()
	r.lock = nil
}

// Path returns the path of a file inside the repo.
func (r *Repo) Path(name string) string { return filepath.Join(r.Dir, name) }

// Close flushes and closes the datastore and releases the lock.
func (r *Repo) Close() error {
	var err error
	if r.Datastore != nil {
		if syncErr := r.Datastore.Sync(context.Background(), ds.NewKey("/")); syncErr != nil {
			err = fmt.Errorf("flush datastore: %w", syncErr)
		}
		if closeErr := r.Datastore.Close(); closeErr != nil && err == nil {
			err = fmt.Errorf("close datastore: %w", closeErr)
		}
		r.Datastore, r.Unsynced = nil, nil
	}
	r.releaseLock()
	return err
}
