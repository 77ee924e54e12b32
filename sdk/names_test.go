package sdk

import "testing"

func TestNameSpelling(t *testing.T) {
	for in, want := range map[string]string{
		"einstein.avtr": "einstein.avtr", "Einstein.AVTR": "einstein.avtr", "an://coolblog:code": "coolblog.code",
		"AN://Api.CoolBlog:Code": "api.coolblog.code", " einstein.avtr ": "einstein.avtr",
		"\u212Aelvin.avtr": "\u212Aelvin.avtr", // the Kelvin sign stays: the node refuses it
	} {
		if got := NameSpelling(in); got != want {
			t.Errorf("NameSpelling(%q) = %q, want %q", in, got, want)
		}
	}
}
