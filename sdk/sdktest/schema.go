package sdktest

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// CheckSchema fails the test where a role's ConfigSchema and the Go type
// its config decodes into disagree: a key one has and the other lacks, or
// a key whose JSON type differs. config is a value of that type, e.g.
// config{}. A role keeps its schema hand-written, with what a Go type
// cannot say (minimum, required, descriptions), and this keeps the two
// from drifting apart.
func CheckSchema(t testing.TB, schema string, config any) {
	t.Helper()
	for _, m := range schemaMismatches(schema, config) {
		t.Error(m)
	}
}

// jsonSchema is the part of a JSON Schema that CheckSchema compares.
type jsonSchema struct {
	Type                 string                `json:"type"`
	Properties           map[string]jsonSchema `json:"properties"`
	Items                *jsonSchema           `json:"items"`
	AdditionalProperties *bool                 `json:"additionalProperties"`
}

func schemaMismatches(schema string, config any) []string {
	var s jsonSchema
	if err := json.Unmarshal([]byte(schema), &s); err != nil {
		return []string{fmt.Sprintf("the schema is not JSON: %v", err)}
	}
	var out []string
	if s.AdditionalProperties == nil || *s.AdditionalProperties {
		out = append(out, `the schema allows unknown keys, which the config refuses: add "additionalProperties": false`)
	}
	return append(out, compareSchema("config", s, reflect.TypeOf(config))...)
}

// compareSchema compares s with the Go type t at path.
func compareSchema(path string, s jsonSchema, t reflect.Type) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if want := jsonType(t); s.Type != want {
		return []string{fmt.Sprintf("%s: the schema says %q, the Go type %s decodes %q", path, s.Type, t, want)}
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		if s.Items == nil {
			return []string{fmt.Sprintf("%s: the schema does not say what the array holds", path)}
		}
		return compareSchema(path+"[]", *s.Items, t.Elem())
	case reflect.Struct:
		return compareFields(path, s.Properties, t)
	}
	return nil
}

// compareFields compares an object's properties with a struct's JSON keys.
func compareFields(path string, props map[string]jsonSchema, t reflect.Type) []string {
	var out []string
	seen := map[string]bool{}
	for f := range t.Fields() {
		key := jsonKey(f)
		if key == "" {
			continue
		}
		seen[key] = true
		p, ok := props[key]
		if !ok {
			out = append(out, fmt.Sprintf("%s: the schema lacks %q (field %s)", path, key, f.Name))
			continue
		}
		out = append(out, compareSchema(path+"."+key, p, f.Type)...)
	}
	for key := range props {
		if !seen[key] {
			out = append(out, fmt.Sprintf("%s: the schema has %q, which the Go type %s does not decode", path, key, t))
		}
	}
	slices.Sort(out)
	return out
}

// jsonKey is the key encoding/json reads a field from; "" for none.
func jsonKey(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	switch name {
	case "-":
		return ""
	case "":
		return f.Name
	}
	return name
}

// jsonType is the JSON Schema type a Go type decodes from.
func jsonType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Struct, reflect.Map:
		return "object"
	}
	return t.Kind().String()
}
