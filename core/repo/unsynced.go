package repo

import (
	"context"

	ds "github.com/ipfs/go-datastore"
	leveldb "github.com/ipfs/go-ds-leveldb"
	goleveldb "github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"
)

// unsynced is the repo's datastore with writes that reach the operating
// system but are not forced to disk: what a crashed process wrote is still
// there when it restarts (a kill -9 loses nothing), but a power cut may lose
// the last seconds. It is for what the network gives back on its own, the
// DHT's records held for other nodes, which their owners republish: an
// fsync per record held would make every publish wait on every holder's disk.
type unsynced struct {
	*leveldb.Datastore
}

var noSync = &opt.WriteOptions{Sync: false}

func (u unsynced) Put(ctx context.Context, key ds.Key, value []byte) error {
	return u.DB.Put(key.Bytes(), value, noSync)
}

func (u unsynced) Delete(ctx context.Context, key ds.Key) error {
	return u.DB.Delete(key.Bytes(), noSync)
}

func (u unsynced) Batch(ctx context.Context) (ds.Batch, error) {
	return &unsyncedBatch{db: u.DB, b: new(goleveldb.Batch)}, nil
}

// Close belongs to the repo, which closes the store once for both views.
func (u unsynced) Close() error { return nil }

type unsyncedBatch struct {
	db *goleveldb.DB
	b  *goleveldb.Batch
}

func (b *unsyncedBatch) Put(ctx context.Context, key ds.Key, value []byte) error {
	b.b.Put(key.Bytes(), value)
	return nil
}

func (b *unsyncedBatch) Delete(ctx context.Context, key ds.Key) error {
	b.b.Delete(key.Bytes())
	return nil
}

func (b *unsyncedBatch) Commit(ctx context.Context) error { return b.db.Write(b.b, noSync) }
