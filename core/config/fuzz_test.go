package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadFile reads a config file as an operator may write it: Load either
// refuses it with an error or returns a config that passes its own checks.
func FuzzLoadFile(f *testing.F) {
	f.Add([]byte("listen: [/ip4/127.0.0.1/tcp/0]\nnames: {resolve_quorum: 2}\n"))
	f.Add([]byte("connmgr: {low: 10, high: 5}\n"))
	f.Add([]byte("dht: {mode: sideways}\n"))
	f.Add([]byte("names:\n  zone_ttl: -5m\n"))
	f.Add([]byte("role_config: {mirror: {names: [a.avtr]}}\n"))
	f.Add([]byte("{{{{"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(Sources{ExtraFile: path})
		if err != nil {
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Load accepted a config its own checks refuse: %v\n%s", err, data)
		}
	})
}
