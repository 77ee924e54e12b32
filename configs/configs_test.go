// Package configs holds example configs per kind of machine; its test checks
// that every example still loads and validates against the current schema.
package configs

import (
	"path/filepath"
	"testing"

	"github.com/avnode/avnode/core/config"
)

func TestExamplesValidate(t *testing.T) {
	files, _ := filepath.Glob("*.yaml")
	if len(files) < 4 {
		t.Fatalf("expected the four example configs, found %v", files)
	}
	for _, f := range files {
		if _, err := config.Load(config.Sources{ExtraFile: f}); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
