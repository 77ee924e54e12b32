package policy

import (
	"encoding/json"
	"fmt"

	lua "github.com/yuin/gopher-lua"
)

// Limits on a hook's input. The node builds inputs from network data, so a
// peer could otherwise hand a script megabytes to chew on.
const (
	maxInputBytes = 64 << 10
	maxInputList  = 1024 // elements of an array, keys of an object
	maxInputDepth = 16
)

// Limits on what a hook returns, so a verdict stays a small message.
const (
	maxReasonBytes = 512
	maxOrder       = maxInputList
)

func decodeInput(raw []byte) (map[string]any, error) {
	if len(raw) > maxInputBytes {
		return nil, fmt.Errorf("input is %d bytes of JSON; at most %d are allowed", len(raw), maxInputBytes)
	}
	var data map[string]any
	if err := json.Unmarshal(raw, &data); err != nil || data == nil {
		return nil, fmt.Errorf("input must be a JSON object: %v", err)
	}
	if err := checkShape(data, 1); err != nil {
		return nil, fmt.Errorf("input: %w", err)
	}
	return data, nil
}

func checkShape(v any, depth int) error {
	if depth > maxInputDepth {
		return fmt.Errorf("nested deeper than %d levels", maxInputDepth)
	}
	switch v := v.(type) {
	case []any:
		if len(v) > maxInputList {
			return fmt.Errorf("a list of %d elements; at most %d are allowed", len(v), maxInputList)
		}
		for _, e := range v {
			if err := checkShape(e, depth+1); err != nil {
				return err
			}
		}
	case map[string]any:
		if len(v) > maxInputList {
			return fmt.Errorf("an object of %d keys; at most %d are allowed", len(v), maxInputList)
		}
		for _, e := range v {
			if err := checkShape(e, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// toLua converts decoded JSON to Lua; objects and arrays become read-only
// tables, nested ones included.
func (sb *sandbox) toLua(v any) lua.LValue {
	switch v := v.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []any:
		t := sb.L.CreateTable(len(v), 0)
		for i, e := range v {
			t.RawSetInt(i+1, sb.toLua(e))
		}
		return sb.readOnlyTable(t)
	case map[string]any:
		t := sb.L.CreateTable(0, len(v))
		for k, e := range v {
			t.RawSetString(k, sb.toLua(e))
		}
		return sb.readOnlyTable(t)
	}
	return lua.LNil
}

// verdict reads a hook's returned table: {allow=bool, reason=string} or,
// for ordering hooks, {order={peer ids}, reason=string}.
func (sb *sandbox) verdict(spec hookSpec, hook string, ret lua.LValue) (result, error) {
	t, ok := ret.(*lua.LTable)
	if !ok {
		return result{}, fmt.Errorf("%s returned a %s; return nil or a table such as %s", hook, ret.Type(), spec.example())
	}
	t = sb.unwrap(t)
	reason, err := reasonOf(t.RawGetString("reason"))
	if err != nil {
		return result{}, fmt.Errorf("%s: %w", hook, err)
	}
	if spec.order {
		order, err := sb.orderOf(t.RawGetString("order"))
		if err != nil {
			return result{}, fmt.Errorf("%s: %w; return a table such as %s", hook, err, spec.example())
		}
		return result{Decided: true, Order: order, Reason: reason}, nil
	}
	allow, ok := t.RawGetString("allow").(lua.LBool)
	if !ok {
		return result{}, fmt.Errorf("%s returned allow = %s; allow must be true or false, as in %s", hook, t.RawGetString("allow").Type(), spec.example())
	}
	return result{Decided: true, Allow: bool(allow), Reason: reason}, nil
}

func (spec hookSpec) example() string {
	if spec.order {
		return `{order = {"12D3KooW…"}, reason = "…"}`
	}
	return `{allow = true, reason = "…"}`
}

func reasonOf(v lua.LValue) (string, error) {
	switch v := v.(type) {
	case *lua.LNilType:
		return "", nil
	case lua.LString:
		return truncate(string(v), maxReasonBytes), nil
	case lua.LNumber:
		return v.String(), nil
	}
	return "", fmt.Errorf("reason is a %s; it must be a string", v.Type())
}

func (sb *sandbox) orderOf(v lua.LValue) ([]string, error) {
	t, ok := v.(*lua.LTable)
	if !ok {
		return nil, fmt.Errorf("order is a %s, not a list of peer ids", v.Type())
	}
	t = sb.unwrap(t)
	n := min(t.Len(), maxOrder)
	order := make([]string, 0, n)
	for i := 1; i <= n; i++ {
		id, ok := t.RawGetInt(i).(lua.LString)
		if !ok {
			return nil, fmt.Errorf("order[%d] is a %s, not a peer id", i, t.RawGetInt(i).Type())
		}
		order = append(order, string(id))
	}
	return order, nil
}

// completeOrder turns a script's preference into the full order: the listed
// candidates first, as listed, then the others in their given order. Ids
// that are not candidates are dropped.
func completeOrder(listed []string, data map[string]any) []string {
	candidates := candidatePeers(data)
	known := make(map[string]bool, len(candidates))
	for _, id := range candidates {
		known[id] = true
	}
	placed := make(map[string]bool, len(candidates))
	out := make([]string, 0, len(candidates))
	for _, id := range listed {
		if known[id] && !placed[id] {
			placed[id] = true
			out = append(out, id)
		}
	}
	for _, id := range candidates {
		if !placed[id] {
			placed[id] = true
			out = append(out, id)
		}
	}
	return out
}

func candidatePeers(data map[string]any) []string {
	list, _ := data["candidates"].([]any)
	ids := make([]string, 0, len(list))
	for _, c := range list {
		m, _ := c.(map[string]any)
		if id, ok := m["peer"].(string); ok && id != "" {
			ids = append(ids, id)
		}
	}
	return ids
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
