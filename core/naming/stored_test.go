package naming

import (
	"fmt"
	"testing"
	"time"

	"github.com/avnode/avnode/core/node"
)

// A holder that stores a newer zone resolves it at once, though its cache
// still held the older version for the zone's TTL, and tells its watchers.
func TestHolderLearnsTheZonesItStores(t *testing.T) {
	nodes := newTestNetwork(t, 4, nil)
	owner, holder := nodes[0], nodes[3]
	stop := holder.node.WatchRecords(func(r node.RecordStored) { holder.names.NoteStored(r.Key, r.Value) })
	defer stop()
	claimName(t, owner, "fresh.avtr", "k")
	ctx := ctxFor(t, time.Minute)
	change := func(value string) {
		t.Helper()
		if _, err := owner.names.ChangeRecord(ctx, RecordChange{Name: "fresh.avtr", Type: "TXT", Value: value}); err != nil {
			t.Fatal(err)
		}
	}
	change("one")
	first, err := holder.names.Resolve(ctx, "fresh.avtr")
	if err != nil {
		t.Fatal(err)
	}
	updates := make(chan Update, 8)
	stopWatch := holder.names.Watch(func(u Update) { updates <- u })
	defer stopWatch()

	change("two")
	waitFor(t, 20*time.Second, "the holder resolves the stored version", func() error {
		res, err := holder.names.Resolve(ctx, "fresh.avtr")
		if err != nil {
			return err
		}
		if res.Seq <= first.Seq {
			return fmt.Errorf("still seq %d (first %d)", res.Seq, first.Seq)
		}
		return nil
	})
	select {
	case u := <-updates:
		if u.Name != "fresh.avtr" || u.Seq <= first.Seq {
			t.Fatalf("update %+v", u)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watchers were not told")
	}

	// A forged zone never gets this far (the DHT refuses it), and junk
	// handed to NoteStored changes nothing.
	holder.names.NoteStored("/avtr-zone/fresh.avtr", []byte("junk"))
	holder.names.NoteStored("/pk/whatever", []byte("junk"))
	time.Sleep(100 * time.Millisecond)
	if res, err := holder.names.Resolve(ctx, "fresh.avtr"); err != nil || res.Seq <= first.Seq {
		t.Fatalf("after junk: %+v, %v", res, err)
	}
}
