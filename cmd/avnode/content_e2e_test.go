package main

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/avnode/avnode/core/api"
)

// writeSite makes a directory with a 5 MB file, an index.html and a subfolder.
func writeSite(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "site")
	os.MkdirAll(filepath.Join(dir, "img"), 0o755)
	big := make([]byte, 5_000_000)
	rand.Read(big)
	os.WriteFile(filepath.Join(dir, "big.bin"), big, 0o644)
	os.WriteFile(filepath.Join(dir, "index.html"), []byte("<h1>coolblog</h1>\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "img", "dot.txt"), []byte("."), 0o644)
	return dir
}

// sameTree fails unless b holds exactly a's files with a's bytes.
func sameTree(t testing.TB, a, b string) {
	t.Helper()
	filepath.WalkDir(a, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(a, p)
		other := filepath.Join(b, rel)
		if d.IsDir() {
			if info, err := os.Stat(other); err != nil || !info.IsDir() {
				t.Fatalf("%s missing in the copy", rel)
			}
			return nil
		}
		want, _ := os.ReadFile(p)
		got, err := os.ReadFile(other)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s differs in the copy (%v)", rel, err)
		}
		return nil
	})
}

// Five daemons: publish a site on one, get it byte for byte on another;
// with the publisher gone, the node that fetched it serves a third.
func TestPublishAndGetAcrossProcesses(t *testing.T) {
	t.Parallel()
	nodes := startNetwork(t, 5)
	publisher, reader, third := nodes[1], nodes[3], nodes[4]
	mustCLI(t, publisher.repo, "key", "gen", "jimmy")
	mustCLI(t, publisher.repo, "name", "claim", "coolblog.code", "--key", "jimmy")
	site := writeSite(t)

	var pub api.PublishResult
	cliJSON(t, publisher.repo, &pub, "publish", site, "--name", "coolblog.code")
	if pub.Files != 3 || pub.Bytes != 5_000_000+18+1 || pub.Root == "" || pub.NewBlocks == 0 {
		t.Fatalf("publish: %+v", pub)
	}
	var again api.PublishResult
	cliJSON(t, publisher.repo, &again, "publish", site)
	if again.Root != pub.Root || again.NewBlocks != 0 {
		t.Fatalf("publishing the same directory again stored new blocks: %+v", again)
	}

	// A path fetches the directories down to it, and the file: not big.bin.
	var one api.GetResult
	dot := filepath.Join(t.TempDir(), "dot.txt")
	cliJSON(t, third.repo, &one, "get", "coolblog.code/img/dot.txt", "-o", dot)
	if b, _ := os.ReadFile(dot); string(b) != "." || one.Stats.Fetched != 3 || one.Stats.Bytes > 4096 {
		t.Fatalf("get of one small file by path: %q, %+v", b, one.Stats)
	}

	out := filepath.Join(t.TempDir(), "copy")
	mustCLI(t, reader.repo, "get", "coolblog.code", "-o", out)
	sameTree(t, site, out)

	// A file by path, to stdout, with the name in either spelling.
	for _, target := range []string{"coolblog.code/index.html", "an://coolblog:code/index.html"} {
		if got := mustCLI(t, reader.repo, "get", target); got != "<h1>coolblog</h1>\n" {
			t.Fatalf("get %s: %q", target, got)
		}
	}
	var listing api.GetResult
	cliJSON(t, reader.repo, &listing, "get", "/cid/"+pub.Root)
	if listing.Kind != "dir" || len(listing.Entries) != 3 {
		t.Fatalf("listing: %+v", listing)
	}

	publisher.kill()
	out3 := filepath.Join(t.TempDir(), "copy3")
	r := cli(t, third.repo, nil, "get", "/cid/"+pub.Root, "-o", out3, "--json")
	if r.code != 0 {
		t.Fatalf("get with the publisher gone: %s\n%s", r.stderr, third.log)
	}
	sameTree(t, site, out3)
	var got api.GetResult
	jsonUnmarshal(r.stdout, &got)
	if got.Stats.Sources[reader.peerID] == 0 {
		t.Fatalf("the reader that cached the site did not serve it: %+v", got.Stats)
	}
}

// gc frees cached blocks and keeps pinned ones.
func TestGCKeepsPins(t *testing.T) {
	t.Parallel()
	nodes := startNetwork(t, 4)
	a, b := nodes[0], nodes[2]
	site := writeSite(t)
	mustCLI(t, a.repo, "key", "gen", "k")
	mustCLI(t, a.repo, "name", "claim", "gc.avtr", "--key", "k")
	var pub api.PublishResult
	cliJSON(t, a.repo, &pub, "publish", site, "--name", "gc.avtr")
	mustCLI(t, b.repo, "get", "/cid/"+pub.Root, "-o", filepath.Join(t.TempDir(), "x"))

	var gcB api.GCResult
	cliJSON(t, b.repo, &gcB, "repo", "gc")
	if gcB.Removed == 0 || gcB.Freed < 5_000_000 {
		t.Fatalf("gc on the reader freed nothing of its cache: %+v", gcB)
	}
	var gcA api.GCResult
	cliJSON(t, a.repo, &gcA, "repo", "gc")
	if gcA.Removed != 0 || gcA.Kept == 0 {
		t.Fatalf("gc removed pinned blocks on the publisher: %+v", gcA)
	}
	out := filepath.Join(t.TempDir(), "y")
	mustCLI(t, a.repo, "get", "/cid/"+pub.Root, "-o", out)
	sameTree(t, site, out)
	if r := cli(t, a.repo, nil, "publish", filepath.Join(site, "nope")); r.code == 0 || !strings.Contains(r.stderr, "nope") {
		t.Fatalf("publishing a missing dir: %d %s", r.code, r.stderr)
	}
}
