package daemon

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/avnode/avnode/core/content"
	"github.com/avnode/avnode/core/hosting"
	"github.com/avnode/avnode/core/naming"
	"github.com/avnode/avnode/core/node"
	"github.com/avnode/avnode/core/policy"
)

// A converted answer prints as the domain value always did: every field
// carried over, under the same JSON name.
func TestWireTypesKeepTheDomainsJSON(t *testing.T) {
	for _, tc := range []struct {
		name    string
		domain  any
		convert func(any) any
	}{
		{"resolution", &naming.Resolution{}, func(v any) any { return resolutionOf(v.(*naming.Resolution)) }},
		{"zone", &naming.ZoneInfo{}, func(v any) any { return zoneOf(v.(*naming.ZoneInfo)) }},
		{"claim", &naming.ClaimResult{}, func(v any) any { return claimOf(v.(*naming.ClaimResult)) }},
		{"publish", &hosting.PublishResult{}, func(v any) any { return publishOf(v.(*hosting.PublishResult)) }},
		{"get", &hosting.GetResult{}, func(v any) any { return getResultOf(v.(*hosting.GetResult)) }},
		{"progress", &hosting.Progress{}, func(v any) any { return progressOf(*v.(*hosting.Progress)) }},
		{"gc", &content.GCResult{}, func(v any) any { return gcOf(*v.(*content.GCResult)) }},
		{"peer", &node.PeerInfo{}, func(v any) any { return peerOf(*v.(*node.PeerInfo)) }},
		{"script", &policy.ScriptInfo{}, func(v any) any { return scriptOf(*v.(*policy.ScriptInfo)) }},
	} {
		fill(reflect.ValueOf(tc.domain).Elem())
		want, _ := json.Marshal(tc.domain)
		got, _ := json.Marshal(tc.convert(tc.domain))
		if string(got) != string(want) {
			t.Errorf("%s:\nthe API answers %s\nthe domain says %s", tc.name, got, want)
		}
	}
}

// A nil list stays null and an empty one [], as before.
func TestWireTypesKeepNilAndEmptyLists(t *testing.T) {
	for _, records := range [][]naming.RecordInfo{nil, {}} {
		want, _ := json.Marshal(&naming.ZoneInfo{Records: records})
		got, _ := json.Marshal(zoneOf(&naming.ZoneInfo{Records: records}))
		if string(got) != string(want) {
			t.Errorf("records %#v: %s, want %s", records, got, want)
		}
	}
}

// fill sets every field of v to a value that is not its zero.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString("x")
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(7)
	case reflect.Uint64, reflect.Uint32, reflect.Uint:
		v.SetUint(7)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fill(s.Index(0))
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k)
		fill(e)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i))
			}
		}
	}
}
