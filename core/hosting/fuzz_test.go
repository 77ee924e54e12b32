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
		"/cid/bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy/a", "/cid/", "/cid/x", "/", "",
		"an://newcomer:avtr/style.css", "AN://newcomer:avtr", "an://", "/name/an://a:b/c"} {
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

// Every name form names.Parse reads is a get target too, with a path after
// it: an://name:topic/PATH is not a name "an:" with the path "/name:topic".
func TestParseTargetNameForms(t *testing.T) {
	for in, want := range map[string]Target{
		"einstein.avtr":                    {Name: "einstein.avtr"},
		"einstein.avtr/papers/1905.pdf":    {Name: "einstein.avtr", Path: "papers/1905.pdf"},
		"/name/einstein.avtr/":             {Name: "einstein.avtr"},
		"an://newcomer:avtr/style.css":     {Name: "an://newcomer:avtr", Path: "style.css"},
		"AN://Newcomer:avtr":               {Name: "an://Newcomer:avtr"},
		"an://api.coolblog:code/v1/a.json": {Name: "an://api.coolblog:code", Path: "v1/a.json"},
		"/name/an://newcomer:avtr/a/b":     {Name: "an://newcomer:avtr", Path: "a/b"},
	} {
		got, err := ParseTarget(in)
		if err != nil || got != want {
			t.Errorf("ParseTarget(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	if _, err := ParseTarget("an:///style.css"); !errors.Is(err, ErrBadTarget) {
		t.Errorf("an:// with no name: %v, want ErrBadTarget", err)
	}
}
