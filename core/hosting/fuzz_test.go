package hosting

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParseTarget reads `avnode get` targets as users and plugins type
// them: a refusal always says it is a bad target, and a /cid/ target
// always carries a CID.
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"einstein.avtr", "einstein.avtr/papers/1905.pdf", "/name/einstein.avtr/",
		"/cid/bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy/a", "/cid/", "/cid/x", "/", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		target, err := ParseTarget(s)
		if err != nil {
			if !errors.Is(err, ErrBadTarget) {
				t.Fatalf("ParseTarget(%q): %v does not wrap ErrBadTarget", s, err)
			}
			return
		}
		if strings.HasPrefix(s, "/cid/") != target.Root.Defined() {
			t.Fatalf("ParseTarget(%q) = %+v: a /cid/ target and only it has a root", s, target)
		}
		if !target.Root.Defined() && target.Name == "" {
			t.Fatalf("ParseTarget(%q) = %+v: neither a name nor a CID", s, target)
		}
	})
}
