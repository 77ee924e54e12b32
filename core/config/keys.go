package config

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
)

// Flatten is c as dotted keys (dht.mode) and their values, as the config
// file and flags name them. Open maps (role_config, checksums, grants)
// are flattened too, one key per leaf.
func Flatten(c *Config) map[string]any {
	b, _ := json.Marshal(c)
	var tree map[string]any
	json.Unmarshal(b, &tree)
	out := map[string]any{}
	flattenInto(out, "", tree)
	return out
}

func flattenInto(out map[string]any, prefix string, v any) {
	m, ok := v.(map[string]any)
	if !ok || len(m) == 0 && prefix != "" {
		out[prefix] = v
		return
	}
	for k, child := range m {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		flattenInto(out, key, child)
	}
}

// Changed lists the keys whose values differ between a and b, sorted.
func Changed(a, b *Config) []string {
	fa, fb := Flatten(a), Flatten(b)
	keys := map[string]bool{}
	for k := range fa {
		keys[k] = true
	}
	for k := range fb {
		keys[k] = true
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if !reflect.DeepEqual(orAbsent(fa[k]), orAbsent(fb[k])) {
			out = append(out, k)
		}
	}
	return out
}

// orAbsent reads an empty section as no value: its leaves, on the other
// side, are the change.
func orAbsent(v any) any {
	if m, ok := v.(map[string]any); ok && len(m) == 0 {
		return nil
	}
	return v
}

// Get is the value of one key of c: a leaf (dht.mode) or a section (dht).
func Get(c *Config, key string) (any, error) {
	flat := Flatten(c)
	if v, ok := flat[key]; ok {
		return v, nil
	}
	section := map[string]any{}
	for k, v := range flat {
		if rest, ok := strings.CutPrefix(k, key+"."); ok {
			section[rest] = v
		}
	}
	if len(section) > 0 {
		return section, nil
	}
	known := map[string]any{}
	for k := range flat {
		known[k] = nil
	}
	return nil, fmt.Errorf("config: no key %q%s", key, suggest(key, known))
}

// Settable reports whether key is one the config can set: a key of the
// defaults, or one under an open map (role_config.ROLE.KEY); and whether
// its default value is a list (so that a,b can be read as one).
func Settable(key string) (isList bool, err error) {
	if underOpenMap(key) {
		return false, nil
	}
	def, _ := Load(Sources{})
	v, err := Get(def, key)
	if err != nil {
		return false, err
	}
	_, isList = v.([]any)
	return isList, nil
}
