package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/avnode/avnode/sdk"
)

// The owner's signed claim and zone of each mirrored name are kept in the
// role's data folder (records/NAME.claim, records/NAME.zone), so that the
// mirror can put them again after the DHT has forgotten them, across
// restarts too.

type signedRecord struct {
	key   string
	value []byte
}

func (m *mirror) recordFile(name, kind string) string {
	return filepath.Join(m.host.DataDir(), "records", name+"."+kind)
}

// keepSigned stores the signed records a resolution rests on.
func (m *mirror) keepSigned(name string, res sdk.Resolution) error {
	if len(res.SignedZone) == 0 || len(res.SignedClaim) == 0 {
		return errors.New("the node gave no signed zone and claim with the resolution")
	}
	if err := os.MkdirAll(filepath.Join(m.host.DataDir(), "records"), 0o700); err != nil {
		return err
	}
	for kind, data := range map[string][]byte{"claim": res.SignedClaim, "zone": res.SignedZone} {
		if err := sdk.WriteFileAtomic(m.recordFile(name, kind), data); err != nil {
			return err
		}
	}
	return nil
}

// loadSigned returns the kept claim and zone with their DHT keys, claim first.
func (m *mirror) loadSigned(name string) ([]signedRecord, error) {
	var out []signedRecord
	for _, r := range []struct{ kind, keyPrefix string }{{"claim", sdk.ClaimKeyPrefix}, {"zone", sdk.ZoneKeyPrefix}} {
		data, err := os.ReadFile(m.recordFile(name, r.kind))
		if err != nil {
			return nil, fmt.Errorf("no signed %s kept for %s: %w", r.kind, name, err)
		}
		out = append(out, signedRecord{key: r.keyPrefix + name, value: data})
	}
	return out, nil
}

func (m *mirror) dropSigned(name string) {
	for _, kind := range []string{"claim", "zone"} {
		os.Remove(m.recordFile(name, kind))
	}
}
