package cli

import "testing"

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
