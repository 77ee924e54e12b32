package names

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	tests := []struct {
		in, want, registered, sub, topic string
		err                              string // substring of the error; "" = must parse
	}{
		{in: "einstein.avtr", want: "einstein.avtr", registered: "einstein.avtr", topic: "avtr"},
		{in: "api.coolblog.code", want: "api.coolblog.code", registered: "coolblog.code", sub: "api", topic: "code"},
		{in: "a.b.coolblog.code", want: "a.b.coolblog.code", registered: "coolblog.code", sub: "a.b", topic: "code"},
		{in: "Einstein.AVTR", want: "einstein.avtr", registered: "einstein.avtr", topic: "avtr"},
		{in: "x-1.y2", want: "x-1.y2", registered: "x-1.y2", topic: "y2"},
		{in: "xn--bcher-kva.avtr", want: "xn--bcher-kva.avtr", registered: "xn--bcher-kva.avtr", topic: "avtr"},
		{in: "an://coolblog:code", want: "coolblog.code", registered: "coolblog.code", topic: "code"},
		{in: "AN://CoolBlog:Code", want: "coolblog.code", registered: "coolblog.code", topic: "code"},
		{in: "an://api.coolblog:code", want: "api.coolblog.code", registered: "coolblog.code", sub: "api", topic: "code"},
		{in: long63 + ".avtr", want: long63 + ".avtr", registered: long63 + ".avtr", topic: "avtr"},

		{in: "foo", err: `needs a topic, like foo.avtr`},
		{in: "", err: "name is empty"},
		{in: ".avtr", err: "empty label"},
		{in: "foo.", err: "empty label"},
		{in: "foo..avtr", err: "empty label"},
		{in: "foo.avtr.", err: "empty label"},
		{in: "-foo.avtr", err: "must not start or end with '-'"},
		{in: "foo-.avtr", err: "must not start or end with '-'"},
		{in: "foo.-avtr", err: "must not start or end with '-'"},
		{in: "fo_o.avtr", err: "use only a-z"},
		{in: "foo bar.avtr", err: "use only a-z"},
		{in: " foo.avtr", err: "use only a-z"},
		{in: "éinstein.avtr", err: "use only a-z"},
		{in: "\u212Aelvin.avtr", err: "use only a-z"}, // Kelvin sign must not fold to k
		{in: strings.Repeat("a", 64) + ".avtr", err: "at most 63"},
		{in: strings.Repeat(long63+".", 4) + "avtr", err: "at most 253"},
		{in: "an://coolblog", err: "an://name:topic"},
		{in: "an://:code", err: "an://name:topic"},
		{in: "an://coolblog:", err: "an://name:topic"},
		{in: "an://a:b:c", err: "an://name:topic"},
		{in: "an://coolblog:co.de", err: "must be one label"},
		{in: "an://coolblog:code/path", err: "use only a-z"},
		{in: "coolblog:code", err: "an://name:topic"},
		{in: "http://coolblog.code", err: "an://name:topic"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			n, err := Parse(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, ErrBadName) {
					t.Fatalf("Parse(%q) = %v, %v; want error containing %q wrapping ErrBadName", tt.in, n, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if n.String() != tt.want || n.Registered().String() != tt.registered || n.Sub() != tt.sub || n.Topic() != tt.topic {
				t.Fatalf("Parse(%q) = %q (registered %q, sub %q, topic %q); want %q (%q, %q, %q)",
					tt.in, n, n.Registered(), n.Sub(), n.Topic(), tt.want, tt.registered, tt.sub, tt.topic)
			}
			if n.IsRegistered() != (tt.sub == "") {
				t.Fatalf("IsRegistered(%q) = %v", n, n.IsRegistered())
			}
		})
	}
}

func TestParseErrorSaysWhichName(t *testing.T) {
	_, err := Parse("foo")
	want := `name "foo": needs a topic, like foo.avtr`
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("got %v, want prefix %q", err, want)
	}
}

func TestNameComparable(t *testing.T) {
	if mustParse(t, "An://CoolBlog:code") != mustParse(t, "coolblog.code") {
		t.Fatal("two spellings of one name must compare equal")
	}
	if mustParse(t, "api.coolblog.code").Registered() != mustParse(t, "coolblog.code") {
		t.Fatal("Registered() must equal the parsed registered name")
	}
	var zero Name
	if !zero.IsZero() || zero.String() != "" || zero.Sub() != "" || zero.Topic() != "" {
		t.Fatal("zero Name must be empty")
	}
}

func TestWithSub(t *testing.T) {
	n := mustParse(t, "api.coolblog.code")
	tests := []struct{ sub, want, err string }{
		{"", "coolblog.code", ""},
		{"www", "www.coolblog.code", ""},
		{"a.b", "a.b.coolblog.code", ""},
		{"WWW", "", "use only a-z"},
		{"-x", "", "must not start"},
		{"a..b", "", "empty label"},
		{strings.Repeat("abcdefgh.", 30) + "x", "", "at most 253"},
	}
	for _, tt := range tests {
		got, err := n.WithSub(tt.sub)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("WithSub(%q) = %v, %v; want error %q", tt.sub, got, err, tt.err)
			}
			continue
		}
		if err != nil || got.String() != tt.want {
			t.Errorf("WithSub(%q) = %v, %v; want %q", tt.sub, got, err, tt.want)
		}
	}
}

// A sub-label reads as a name's labels do: folded, checked label by label.
func TestParseSubLabel(t *testing.T) {
	for in, want := range map[string]string{"": "", "api": "api", "API": "api", "V1.Api": "v1.api"} {
		if got, err := ParseSubLabel(in); err != nil || got != want {
			t.Errorf("ParseSubLabel(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"under_score", "a..b", "-a", ".a", "é"} {
		if _, err := ParseSubLabel(in); !errors.Is(err, ErrBadName) {
			t.Errorf("ParseSubLabel(%q): %v, want ErrBadName", in, err)
		}
	}
}
