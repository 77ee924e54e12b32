package cli

import (
	"testing"
	"time"
)

// A role's answer is read by field name, numbers as the role wrote them.
func TestFieldsReadARolesAnswer(t *testing.T) {
	var list []fields
	raw := []byte(`[{"name":"einstein.avtr","seq":12,"bytes":5000000,"sources":["a","b"],"paired":true}]`)
	if err := decodeFields(raw, &list); err != nil {
		t.Fatal(err)
	}
	f := list[0]
	if f.text("name") != "einstein.avtr" || f.number("seq") != "12" || f.number("bytes") != "5000000" ||
		f.count("sources") != 2 || f["paired"] != true {
		t.Fatalf("read %v", f)
	}
	if f.text("root") != "" || f.number("refused") != "0" || f.count("dropped") != 0 {
		t.Fatalf("absent fields: %q %q %d", f.text("root"), f.number("refused"), f.count("dropped"))
	}
}

// The claim's progress line: the share done and a time left while under
// the average, no promise past it.
func TestWorkLine(t *testing.T) {
	for _, c := range []struct {
		tried, expected uint64
		took            time.Duration
		want            string
	}{
		{0, 1 << 25, 0, "proof of work: starting"},
		{8_388_608, 1 << 25, time.Second, "proof of work: 8.4M of about 33.6M hashes (25 %), about 3s left"},
		{1 << 25, 1 << 25, 4 * time.Second, "proof of work: 33.6M of about 33.6M hashes, past the average: a claim sometimes takes several times it"},
	} {
		if got := workLine(c.tried, c.expected, c.took); got != c.want {
			t.Errorf("workLine(%d, %d, %s) = %q, want %q", c.tried, c.expected, c.took, got, c.want)
		}
	}
}
