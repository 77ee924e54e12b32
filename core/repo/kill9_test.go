package repo_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	mh "github.com/multiformats/go-multihash"

	"github.com/avnode/avnode/core/content"
	"github.com/avnode/avnode/core/repo"
)

// The writer is this test binary run again with writerEnv set to a repo: it
// writes records and blocks in a loop and acknowledges each on stdout once
// the write has returned, until it is killed.
const (
	writerEnv      = "AVNODE_KILL9_WRITER"
	writerStartEnv = "AVNODE_KILL9_START"
)

// TestKill9DuringWrites is the datastore line of the reliability matrix: a
// process writing to a repo is killed with SIGKILL, again and again (10
// times in `make test`, 100 in `make test-long`); each time the repo opens
// with no repair, and every record and block it had acknowledged is there,
// whole: those written through the synced Datastore and those written
// through Unsynced (the DHT's view), whose writes reach the OS unsynced.
func TestKill9DuringWrites(t *testing.T) {
	if dir := os.Getenv(writerEnv); dir != "" {
		start, _ := strconv.Atoi(os.Getenv(writerStartEnv))
		writeUntilKilled(dir, start)
		return
	}
	rounds := 10
	if os.Getenv("AVNODE_TEST_LONG") == "1" {
		rounds = 100
	}
	dir := t.TempDir()
	if err := repo.Init(dir); err != nil {
		t.Fatal(err)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	next, records, blocks := 0, 0, 0
	for round := 1; round <= rounds; round++ {
		acked := killWriter(t, dir, next, time.Duration(rng.IntN(40))*time.Millisecond)
		if len(acked) == 0 {
			t.Fatalf("kill -9 #%d: the writer acknowledged nothing", round)
		}
		r, err := repo.Open(dir) // no repair step: what a restarted node does
		if err != nil {
			t.Fatalf("after kill -9 #%d: the repo does not open: %v", round, err)
		}
		bs, err := content.OpenBlockstore(r.Path(repo.BlocksDir))
		if err != nil {
			t.Fatalf("after kill -9 #%d: the block store does not open: %v", round, err)
		}
		for _, seq := range acked {
			if seq%blockEvery == 0 {
				c, want := block(seq)
				got, err := bs.Get(c)
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("after kill -9 #%d: acknowledged block %d (%s) is not there whole: %v", round, seq, c, err)
				}
				blocks++
			}
			got, err := r.Datastore.Get(context.Background(), recordKey(seq))
			if err != nil || !bytes.Equal(got, recordValue(seq)) {
				t.Fatalf("after kill -9 #%d: acknowledged record %s is not there whole: %v", round, recordKey(seq), err)
			}
			got, err = r.Unsynced.Get(context.Background(), unsyncedKey(seq))
			if err != nil || !bytes.Equal(got, recordValue(seq)) {
				t.Fatalf("after kill -9 #%d: acknowledged unsynced record %s is not there whole: %v", round, unsyncedKey(seq), err)
			}
			records += 2
		}
		if err := r.Close(); err != nil {
			t.Fatalf("after kill -9 #%d: close: %v", round, err)
		}
		next = acked[len(acked)-1] + 1
	}
	t.Logf("%d kill -9s: all %d acknowledged records and %d blocks were there", rounds, records, blocks)
}

// killWriter starts a writer, lets it acknowledge at least one write, waits
// a little more, kills it with SIGKILL and returns every write it acknowledged.
func killWriter(t *testing.T, dir string, start int, after time.Duration) []int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9DuringWrites$")
	cmd.Env = append(os.Environ(), writerEnv+"="+dir, writerStartEnv+"="+strconv.Itoa(start))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acks := make(chan int, 1<<16)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if seq, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
				n, _ := strconv.Atoi(seq)
				acks <- n
			}
		}
	}()
	var acked []int
	select {
	case seq := <-acks:
		acked = append(acked, seq)
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("the writer acknowledged nothing in 30 s")
	}
	time.Sleep(after)
	cmd.Process.Kill() // SIGKILL: no deferred close, no flush
	cmd.Wait()
	<-readDone // every ack written before the kill is read
	close(acks)
	for seq := range acks {
		acked = append(acked, seq)
	}
	return acked
}

const blockEvery = 4 // one write in four also stores a block

func writeUntilKilled(dir string, start int) {
	r, err := repo.Open(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "writer:", err)
		os.Exit(1)
	}
	bs, err := content.OpenBlockstore(r.Path(repo.BlocksDir))
	if err != nil {
		fmt.Fprintln(os.Stderr, "writer:", err)
		os.Exit(1)
	}
	for seq := start; ; seq++ {
		if seq%blockEvery == 0 {
			c, data := block(seq)
			if err := bs.Put(c, data); err != nil {
				fmt.Fprintln(os.Stderr, "writer:", err)
				os.Exit(1)
			}
		}
		if err := r.Datastore.Put(context.Background(), recordKey(seq), recordValue(seq)); err != nil {
			fmt.Fprintln(os.Stderr, "writer:", err)
			os.Exit(1)
		}
		if err := r.Unsynced.Put(context.Background(), unsyncedKey(seq), recordValue(seq)); err != nil {
			fmt.Fprintln(os.Stderr, "writer:", err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stdout, "ack %d\n", seq) // os.Stdout is unbuffered
	}
}

func recordKey(seq int) ds.Key { return ds.NewKey(fmt.Sprintf("/kill9/%09d", seq)) }

func unsyncedKey(seq int) ds.Key { return ds.NewKey(fmt.Sprintf("/dht/kill9/%09d", seq)) }

// recordValue is 1 KiB that says which record it is, so a torn or swapped
// value shows.
func recordValue(seq int) []byte {
	sum := sha256.Sum256([]byte(strconv.Itoa(seq)))
	return bytes.Repeat(sum[:], 32)
}

// block is a 64 KiB raw block of its own, with its CID.
func block(seq int) (cid.Cid, []byte) {
	data := bytes.Repeat(recordValue(seq), 64)
	sum := sha256.Sum256(data)
	m, _ := mh.Encode(sum[:], mh.SHA2_256)
	return cid.NewCidV1(cid.Raw, m), data
}
