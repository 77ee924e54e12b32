package names

import "bytes"

// MergeWitnesses adds to c the valid witnesses of other, a copy of the same
// signed claim countersigned elsewhere, and returns how many it added.
// Witnesses of a different claim, forged or duplicate ones are ignored.
func (c *Claim) MergeWitnesses(other *Claim) int {
	if other == nil || !bytes.Equal(c.envelope, other.envelope) {
		return 0
	}
	added := 0
	for _, w := range other.Witnesses {
		if len(c.Witnesses) >= MaxWitnesses {
			break
		}
		if c.hasWitness(w) || !c.validWitness(w) {
			continue
		}
		c.Witnesses = append(c.Witnesses, w)
		added++
	}
	return added
}

func (c *Claim) hasWitness(w Witness) bool {
	for _, have := range c.Witnesses {
		if have.Key != nil && have.Key.Equals(w.Key) {
			return true
		}
	}
	return false
}

// DecodeValid validates value as the record under key and returns the zone,
// so a resolver checks and decodes in one pass.
func (v ZoneValidator) DecodeValid(key string, value []byte) (*Zone, error) {
	return v.decode(key, value)
}
