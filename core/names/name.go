package names

import (
	"fmt"
	"strings"
)

const (
	// MaxLabelLen is the longest label, as in DNS.
	MaxLabelLen = 63
	// MaxNameLen is the longest name in canonical dotted form, as in DNS.
	MaxNameLen = 253
	// altScheme introduces the Alternet spelling an://name:topic.
	altScheme = "an://"
)

// Name is a parsed, canonical avnode name such as einstein.avtr or
// api.coolblog.code. The zero Name is not a valid name. Names are comparable
// with ==.
type Name struct {
	s   string // canonical dotted form
	reg int    // byte offset in s where the registered part starts
}

// Parse reads a name in dotted form (label(.label)*.topic) or in the Alternet
// form an://name:topic or an://sub.name:topic. ASCII upper case is folded to
// lower case; anything outside a-z, 0-9, '-' and '.' is refused.
func Parse(s string) (Name, error) {
	dotted, err := fromAlternet(asciiLower(s))
	if err != nil {
		return Name{}, fmt.Errorf("name %q: %w", s, err)
	}
	if dotted == "" {
		return Name{}, fmt.Errorf("name is empty; write it like einstein.avtr: %w", ErrBadName)
	}
	if len(dotted) > MaxNameLen {
		return Name{}, fmt.Errorf("name %q: %d characters, at most %d allowed: %w", s, len(dotted), MaxNameLen, ErrBadName)
	}
	labels := strings.Split(dotted, ".")
	for _, l := range labels {
		if err := checkLabel(l); err != nil {
			return Name{}, fmt.Errorf("name %q: %w", s, err)
		}
	}
	if len(labels) < 2 {
		return Name{}, fmt.Errorf("name %q: needs a topic, like %s.avtr: %w", s, dotted, ErrBadName)
	}
	reg := len(dotted) - len(labels[len(labels)-2]) - len(labels[len(labels)-1]) - 1
	return Name{s: dotted, reg: reg}, nil
}

// fromAlternet turns an://name:topic into name.topic and passes other input
// through unchanged.
func fromAlternet(s string) (string, error) {
	rest, ok := strings.CutPrefix(s, altScheme)
	if !ok && strings.Contains(s, ":") {
		return "", fmt.Errorf("':' only appears in the form an://name:topic; otherwise write name.topic: %w", ErrBadName)
	}
	if !ok {
		return s, nil
	}
	name, topic, ok := strings.Cut(rest, ":")
	if !ok || name == "" || topic == "" || strings.Contains(topic, ":") {
		return "", fmt.Errorf("the an:// form is an://name:topic, like an://coolblog:code: %w", ErrBadName)
	}
	if strings.Contains(topic, ".") {
		return "", fmt.Errorf("topic %q in an:// form must be one label: %w", topic, ErrBadName)
	}
	return name + "." + topic, nil
}

// checkLabel applies the label grammar: 1-63 of a-z, 0-9 and '-', not
// starting or ending with '-'.
func checkLabel(l string) error {
	switch {
	case l == "":
		return fmt.Errorf("empty label (two dots in a row, or a leading or trailing dot): %w", ErrBadName)
	case len(l) > MaxLabelLen:
		return fmt.Errorf("label %q is %d characters, at most %d allowed: %w", l, len(l), MaxLabelLen, ErrBadName)
	case l[0] == '-' || l[len(l)-1] == '-':
		return fmt.Errorf("label %q must not start or end with '-': %w", l, ErrBadName)
	}
	for i := 0; i < len(l); i++ {
		if c := l[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("label %q has %q; use only a-z, 0-9 and '-': %w", l, rune(c), ErrBadName)
		}
	}
	return nil
}

// checkSubLabel validates a zone entry's label: "" for the registered name
// itself, otherwise one or more dot-separated labels.
func checkSubLabel(sub string) error {
	if sub == "" {
		return nil
	}
	for _, l := range strings.Split(sub, ".") {
		if err := checkLabel(l); err != nil {
			return err
		}
	}
	return nil
}

// ParseSubLabel reads a sub-label as a name's labels are read: ASCII upper
// case folded to lower case (API is api), one or more dot-separated
// labels, "" for the registered name itself.
func ParseSubLabel(s string) (string, error) {
	sub := asciiLower(s)
	if err := checkSubLabel(sub); err != nil {
		return "", fmt.Errorf("label %q: %w", s, err)
	}
	return sub, nil
}

// asciiLower folds only A-Z. strings.ToLower would also fold non-ASCII
// look-alikes (the Kelvin sign K becomes k), letting two visibly different
// inputs name the same owner.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}

// String returns the canonical dotted form, e.g. api.coolblog.code.
func (n Name) String() string { return n.s }

// IsZero reports whether n is the zero Name (not a parsed name).
func (n Name) IsZero() bool { return n.s == "" }

// Registered returns the last two labels, e.g. coolblog.code for
// api.coolblog.code: the part that is claimed and has a zone.
func (n Name) Registered() Name { return Name{s: n.s[n.reg:]} }

// IsRegistered reports whether n has no sub label, i.e. n == n.Registered().
func (n Name) IsRegistered() bool { return n.reg == 0 }

// Sub returns the labels before the registered part: "api" for
// api.coolblog.code, "a.b" for a.b.coolblog.code, "" for coolblog.code.
func (n Name) Sub() string {
	if n.reg == 0 {
		return ""
	}
	return n.s[:n.reg-1]
}

// Topic returns the last label, e.g. avtr.
func (n Name) Topic() string { return n.s[strings.LastIndexByte(n.s, '.')+1:] }

// WithSub returns the name sub.registered, or the registered name when sub is
// "". It refuses a sub that breaks the label grammar or the length limit.
func (n Name) WithSub(sub string) (Name, error) {
	if err := checkSubLabel(sub); err != nil {
		return Name{}, fmt.Errorf("sub-label %q of %s: %w", sub, n.Registered(), err)
	}
	if sub == "" {
		return n.Registered(), nil
	}
	return Parse(sub + "." + n.Registered().s)
}
