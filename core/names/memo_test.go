package names

import (
	"errors"
	"testing"
)

// TestSignatureMemoNeverPassesAForgery: once a zone's signatures are
// remembered as good, the same zone with one signature byte changed, or
// signed over a changed payload, is still verified, and refused.
func TestSignatureMemoNeverPassesAForgery(t *testing.T) {
	alice := testKey(t, 1)
	c := mint(t, "coolblog.code", alice)
	good := sign(t, testZone(t, c, 1, Record{Type: TypeTXT, Value: "genuine"}), alice)
	v := testZoneValidator()
	v.Claims.Memo = NewSignatureMemo(16)
	for range 2 { // the second time from the memo
		if _, err := v.DecodeValid(ZoneKey(c.Name), good); err != nil {
			t.Fatal(err)
		}
	}
	env := wireValue(t, good, fSignedEnvelope)
	forged := append([]byte{}, env...)
	forged[len(forged)-1] ^= 1 // the signature ends the envelope
	bad := zoneValue(forged, wireValue(t, good, fSignedClaim))
	if _, err := v.DecodeValid(ZoneKey(c.Name), bad); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("a flipped signature bit after the good one was remembered: %v; want ErrBadSignature", err)
	}
	if v.Claims.Memo.good.Len() != 2 {
		t.Errorf("memo holds %d signatures; want the zone's and the claim's", v.Claims.Memo.good.Len())
	}
}
