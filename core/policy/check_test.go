package policy

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunFixtures(t *testing.T) {
	script := writeScript(t, "f.lua", `return {
  mirror = function(n)
    if n.name == "broken.avtr" then error("broken on purpose") end
    if n.name == "unsure.avtr" then return nil end
    return { allow = n.public == true }
  end,
}`)
	dir := t.TempDir()
	fixtures := map[string]string{
		"1-allow.json":        `{"hook": "mirror", "input": {"name": "a.avtr", "public": true}, "expect": "allow"}`,
		"2-deny.json":         `{"hook": "mirror", "input": {"name": "a.avtr", "public": false}, "expect": "deny"}`,
		"3-none.json":         `{"hook": "mirror", "input": {"name": "unsure.avtr"}, "expect": "none"}`,
		"4-wrong.json":        `{"hook": "mirror", "input": {"name": "a.avtr", "public": false}, "expect": "allow"}`,
		"5-broken.json":       `{"hook": "mirror", "input": {"name": "broken.avtr"}, "expect": "deny"}`,
		"6-any.json":          `{"hook": "mirror", "input": {"name": "a.avtr"}}`,
		"7-not-a-fixture.txt": `ignored`,
	}
	for name, content := range fixtures {
		writeFile(t, filepath.Join(dir, name), content)
	}
	results, err := RunFixtures(context.Background(), script, dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []bool{true, true, true, false, false, true}
	if len(results) != len(want) {
		t.Fatalf("%d results; want %d", len(results), len(want))
	}
	for i, r := range results {
		if r.Pass != want[i] {
			t.Errorf("%s: pass = %v; want %v (verdict %+v)", filepath.Base(r.Fixture.File), r.Pass, want[i], r.Verdict)
		}
	}
	if !strings.Contains(results[4].Verdict.Err, "broken on purpose") {
		t.Errorf("the failing hook's error is not reported: %+v", results[4].Verdict)
	}
}

func TestRunFixturesRefusesBadFixtures(t *testing.T) {
	script := writeScript(t, "f.lua", `return { mirror = function() return nil end }`)
	for name, content := range map[string]string{
		"unknown-hook.json": `{"hook": "mirrror", "input": {}}`,
		"bad-expect.json":   `{"hook": "mirror", "input": {}, "expect": "yes"}`,
		"not-json.json":     `{"hook": `,
	} {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, name), content)
		if _, err := RunFixtures(context.Background(), script, dir); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v; want an error naming the file", name, err)
		}
	}
	if _, err := RunFixtures(context.Background(), script, t.TempDir()); err == nil {
		t.Error("an empty fixtures directory was accepted")
	}
	if _, err := os.Stat(script); err != nil {
		t.Fatal(err)
	}
}
