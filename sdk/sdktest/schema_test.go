package sdktest

import (
	"strings"
	"testing"
)

type exampleConfig struct {
	Names    []entry `json:"names"`
	Interval string  `json:"interval,omitempty"`
	Follow   *bool   `json:"follow"`
	internal int
}

type entry struct {
	Name   string `json:"name"`
	Copies int    `json:"copies"`
}

const exampleSchema = `{"type":"object","additionalProperties":false,"properties":{` +
	`"names":{"type":"array","items":{"type":"object","properties":{"name":{"type":"string"},"copies":{"type":"integer","minimum":0}}}},` +
	`"interval":{"type":"string"},"follow":{"type":"boolean"}}}`

func TestSchemaAgreesWithItsType(t *testing.T) {
	if got := schemaMismatches(exampleSchema, exampleConfig{}); len(got) != 0 {
		t.Errorf("mismatches = %q, want none", got)
	}
}

func TestSchemaMismatchesAreNamed(t *testing.T) {
	for _, c := range []struct {
		name, schema, want string
	}{
		{"a key the type lacks", strings.Replace(exampleSchema, `"follow"`, `"folow"`, 1), `the schema has "folow"`},
		{"a key the schema lacks", strings.Replace(exampleSchema, `"interval"`, `"every"`, 1), `the schema lacks "interval"`},
		{"a nested key", strings.Replace(exampleSchema, `"copies"`, `"copy"`, 1), `config.names[]: the schema lacks "copies"`},
		{"a type", strings.Replace(exampleSchema, `"interval":{"type":"string"}`, `"interval":{"type":"integer"}`, 1), `config.interval: the schema says "integer"`},
		{"unknown keys allowed", strings.Replace(exampleSchema, `"additionalProperties":false,`, ``, 1), `allows unknown keys`},
		{"not JSON", `{`, `not JSON`},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := schemaMismatches(c.schema, exampleConfig{})
			if !strings.Contains(strings.Join(got, "\n"), c.want) {
				t.Errorf("mismatches = %q, want one saying %q", got, c.want)
			}
		})
	}
}
