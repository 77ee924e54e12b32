package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func flags(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	RegisterFlags(fs)
	fs.String("repo", "", "not a config key")
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return fs
}

func TestDefaultsAreValid(t *testing.T) {
	c, err := Load(Sources{})
	if err != nil {
		t.Fatal(err)
	}
	if c.DHT.Mode != "server" || c.DHT.ProtocolPrefix != "/avtr" || c.DHT.RecordMaxAge.D() != 24*time.Hour {
		t.Fatalf("unexpected defaults: %+v", c.DHT)
	}
	if len(c.Listen) != 2 || !strings.Contains(c.Listen[0], "/tcp/4001") {
		t.Fatalf("listen defaults: %v", c.Listen)
	}
}

// Each source overrides the one before it: default < repo file < extra file < env < flag.
func TestPrecedence(t *testing.T) {
	repoFile := writeFile(t, "log:\n  level: warn\n  format: json\nconnmgr:\n  low: 10\n  high: 20\ndht:\n  mode: client\n")
	extra := writeFile(t, "connmgr:\n  low: 11\n")
	env := []string{"AVNODE_DHT_MODE=auto", "AVNODE_CONNMGR_HIGH=30", "AVNODE_REPO=/ignored", "PATH=/bin"}
	fs := flags(t, "--dht.mode=server", "--repo=/x")

	c, err := Load(Sources{RepoFile: repoFile, ExtraFile: extra, Environ: env, Flags: fs})
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		what      string
		got, want any
	}{
		{"log.format from repo file over default", c.Log.Format, "json"},
		{"log.level from repo file (unset flag does not override)", c.Log.Level, "warn"},
		{"connmgr.low from extra file over repo file", c.ConnMgr.Low, 11},
		{"connmgr.high from env over repo file", c.ConnMgr.High, 30},
		{"dht.mode from flag over env", c.DHT.Mode, "server"},
		{"metrics.listen default", c.Metrics.Listen, "127.0.0.1:9464"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s: got %v, want %v", ch.what, ch.got, ch.want)
		}
	}
}

func TestListsFromEnvAndFlags(t *testing.T) {
	env := []string{"AVNODE_LISTEN=/ip4/127.0.0.1/tcp/1, /ip4/127.0.0.1/tcp/2"}
	c, err := Load(Sources{Environ: env})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Listen) != 2 || c.Listen[1] != "/ip4/127.0.0.1/tcp/2" {
		t.Fatalf("env list: %v", c.Listen)
	}
	c, err = Load(Sources{Environ: env, Flags: flags(t, "--listen=/ip4/127.0.0.1/tcp/0", "--log-level=debug")})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Listen) != 1 || c.Listen[0] != "/ip4/127.0.0.1/tcp/0" || c.Log.Level != "debug" {
		t.Fatalf("flag list/alias: %v %v", c.Listen, c.Log.Level)
	}
}

func TestBadInput(t *testing.T) {
	cases := []struct {
		name string
		src  func(t *testing.T) Sources
		want string
	}{
		{"unknown key in file", func(t *testing.T) Sources {
			return Sources{RepoFile: writeFile(t, "dht:\n  mdoe: client\n")}
		}, `unknown key "dht.mdoe"`},
		{"suggestion", func(t *testing.T) Sources {
			return Sources{RepoFile: writeFile(t, "dht:\n  mdoe: client\n")}
		}, `did you mean "dht.mode"`},
		{"broken yaml", func(t *testing.T) Sources {
			return Sources{RepoFile: writeFile(t, "listen: [unclosed\n")}
		}, "is not valid YAML"},
		{"missing file", func(t *testing.T) Sources {
			return Sources{ExtraFile: filepath.Join(t.TempDir(), "nope.yaml")}
		}, "nope.yaml"},
		{"bad multiaddr", func(t *testing.T) Sources {
			return Sources{Flags: flags(t, "--listen=/ip4/999.0.0.1/tcp/1")}
		}, `listen: "/ip4/999.0.0.1/tcp/1" is not a multiaddr`},
		{"bootstrap without peer id", func(t *testing.T) Sources {
			return Sources{Flags: flags(t, "--bootstrap=/ip4/127.0.0.1/tcp/4001")}
		}, "does not end in /p2p/"},
		{"bad enum", func(t *testing.T) Sources {
			return Sources{Environ: []string{"AVNODE_DHT_MODE=sever"}}
		}, `dht.mode: "sever" is not one of`},
		{"unknown env", func(t *testing.T) Sources {
			return Sources{Environ: []string{"AVNODE_DHT_MDOE=client"}}
		}, "AVNODE_DHT_MDOE names no config key"},
		{"bad duration", func(t *testing.T) Sources {
			return Sources{RepoFile: writeFile(t, "dht:\n  record_max_age: soon\n")}
		}, "record_max_age"},
		{"bad metrics address", func(t *testing.T) Sources {
			return Sources{Flags: flags(t, "--metrics.listen=localhost")}
		}, "metrics.listen"},
		{"bad log level", func(t *testing.T) Sources {
			return Sources{Flags: flags(t, "--log-level=loud")}
		}, `log.level: "loud"`},
		{"connmgr inverted", func(t *testing.T) Sources {
			return Sources{Flags: flags(t, "--connmgr.low=50", "--connmgr.high=10")}
		}, "connmgr"},
		{"plugin address space too small to start", func(t *testing.T) Sources {
			return Sources{Flags: flags(t, "--plugins.sandbox.memory_mb=512")}
		}, "plugins.sandbox.memory_mb: 512 MiB"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.src(t))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
			if strings.Count(err.Error(), "\n") > 0 {
				t.Fatalf("error should be one line: %q", err)
			}
		})
	}
}

func TestEveryKeyHasAFlagAndHelp(t *testing.T) {
	fs := flags(t)
	c, _ := Load(Sources{})
	_ = c
	for key := range flagHelp {
		if fs.Lookup(key) == nil {
			t.Errorf("config key %s has no flag", key)
		}
	}
	count := 0
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Usage == "" {
			t.Errorf("flag --%s has no help", f.Name)
		}
		count++
	})
	if count < len(flagHelp) {
		t.Fatalf("only %d flags for %d keys", count, len(flagHelp))
	}
}

// A checksum is text as written, even all digits, which YAML would read as
// a number and round; a value that is not a sha256 is refused.
func TestChecksumsAreText(t *testing.T) {
	digits := strings.Repeat("1234567890", 6) + "1234"
	hexa := strings.Repeat("0a", 32)
	c, err := Load(Sources{RepoFile: writeFile(t, "plugins:\n  checksums:\n    receiver: "+digits+"\n    mirror: "+hexa+"\n    beacon: 00"+digits[2:]+"\n")})
	if err != nil {
		t.Fatal(err)
	}
	for role, want := range map[string]string{"receiver": digits, "mirror": hexa, "beacon": "00" + digits[2:]} {
		if got := c.Plugins.Checksums[role]; got != want {
			t.Errorf("checksum of %s: %q, want %q as written", role, got, want)
		}
	}
	if _, err := Load(Sources{RepoFile: writeFile(t, "plugins:\n  checksums:\n    receiver: 1234\n")}); err == nil ||
		!strings.Contains(err.Error(), `"1234" is not a sha256`) {
		t.Errorf("a short checksum: %v", err)
	}
}

// A tab in the indentation is named at its own line (go-yaml says the one
// before).
func TestTabIndentNamesItsLine(t *testing.T) {
	path := writeFile(t, "dht:\n  mode: server\n  refresh_interval: 10m\n\tfoo: 1\n")
	_, err := Load(Sources{RepoFile: path})
	if err == nil || !strings.Contains(err.Error(), path+" line 4: a tab in the indentation") {
		t.Fatalf("a tab on line 4: %v", err)
	}
}

// A YAML error names the line it is on, the way an editor counts: the
// parser's errors, which go-yaml counts from 0, and the scanner's alike.
func TestYAMLErrorsNameTheirLine(t *testing.T) {
	for _, c := range []struct{ doc, want string }{
		{"log:\n  level: info\n  format: [text\ndht:\n  mode: server\n", "line 3: did not find expected ',' or ']'"},
		{"dht:\n  mode: server\nlog: {level: info\n", "line 3: did not find expected ',' or '}'"},
		{"log:\n  level: info\nmetrics:\n listen: x\n   foo: 1\n", "line 5: mapping values are not allowed"},
		{"log:\n  level: \"info\n", "line 2: found unexpected end of stream"},
	} {
		_, err := Load(Sources{RepoFile: writeFile(t, c.doc)})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.doc, err, c.want)
		}
	}
}

// SetInFile changes the keys it is given and keeps the rest of the file,
// comments and two-space indentation included.
func TestSetInFileKeepsTheRest(t *testing.T) {
	path := writeFile(t, string(DefaultYAML()))
	if err := SetInFile(path, map[string]any{"roles": []string{"mirror"}, "metrics.listen": "", "bootstrap": []string{}}); err != nil {
		t.Fatal(err)
	}
	c, err := Load(Sources{RepoFile: path})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Roles) != 1 || c.Roles[0] != "mirror" || c.Metrics.Listen != "" || c.DHT.Mode != "server" {
		t.Fatalf("after SetInFile: roles %v, metrics %q, dht.mode %q", c.Roles, c.Metrics.Listen, c.DHT.Mode)
	}
	b, _ := os.ReadFile(path)
	for _, kept := range []string{"# Roles this machine runs", "\n  mode: server", "# Prometheus metrics at"} {
		if !strings.Contains(string(b), kept) {
			t.Errorf("the file lost %q:\n%s", kept, b)
		}
	}
	if err := SetInFile(path, map[string]any{"dht.mode": "sideways"}); err == nil {
		t.Error("a value the config refuses was written")
	}
	if c, _ := Load(Sources{RepoFile: path}); c == nil || c.DHT.Mode != "server" {
		t.Error("a refused value changed the file")
	}
}

// Changed names the keys that differ, open maps' leaves included; Get
// reads a leaf or a section and suggests the key a typo meant.
func TestChangedAndGet(t *testing.T) {
	a, _ := Load(Sources{})
	b, err := Load(Sources{RepoFile: writeFile(t, "log:\n  level: debug\nrole_config:\n  mirror:\n    names: [a.avtr]\n")})
	if err != nil {
		t.Fatal(err)
	}
	if got := Changed(a, b); strings.Join(got, " ") != "log.level role_config.mirror.names" {
		t.Errorf("Changed: %v", got)
	}
	if v, err := Get(b, "log.level"); err != nil || v != "debug" {
		t.Errorf("Get log.level: %v, %v", v, err)
	}
	if v, err := Get(b, "log"); err != nil || v.(map[string]any)["format"] != "text" {
		t.Errorf("Get log: %v, %v", v, err)
	}
	if _, err := Get(b, "log.levle"); err == nil || !strings.Contains(err.Error(), `did you mean "log.level"`) {
		t.Errorf("Get of a typo: %v", err)
	}
}
