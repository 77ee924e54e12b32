package policy

import (
	"net/netip"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// avnodeLib is the avnode module: the few helpers policies need that plain
// Lua lacks. README.md documents each.
func (sb *sandbox) avnodeLib() *lua.LTable {
	L := sb.L
	t := L.CreateTable(0, 5)
	t.RawSetString("log", L.NewFunction(sb.luaLog))
	t.RawSetString("now", L.NewFunction(luaNow))
	t.RawSetString("cidr_match", L.NewFunction(luaCIDRMatch))
	t.RawSetString("short_peer", L.NewFunction(luaShortPeer))
	t.RawSetString("match", L.NewFunction(luaMatch))
	return t
}

// avnode.log(level, msg)
func (sb *sandbox) luaLog(L *lua.LState) int {
	level := L.CheckString(1)
	switch level {
	case "debug", "info", "warn", "error":
	default:
		L.ArgError(1, "level must be \"debug\", \"info\", \"warn\" or \"error\"")
	}
	sb.emit(level, L.ToStringMeta(L.CheckAny(2)).String())
	return 0
}

// avnode.now() -> unix seconds
func luaNow(L *lua.LState) int {
	L.Push(lua.LNumber(time.Now().Unix()))
	return 1
}

// avnode.cidr_match(cidr, ip) -> bool. A bad cidr is the script's mistake and
// raises an error; a bad ip comes from the network and simply does not match.
func luaCIDRMatch(L *lua.LState) int {
	prefix, err := parsePrefix(L.CheckString(1))
	if err != nil {
		L.ArgError(1, "not a CIDR prefix such as \"10.0.0.0/8\" or an address")
	}
	addr, err := netip.ParseAddr(L.CheckString(2))
	L.Push(lua.LBool(err == nil && prefix.Contains(addr.Unmap())))
	return 1
}

// parsePrefix also takes a bare address, as a prefix of just that address.
func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		addr, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		addr = addr.Unmap()
		return netip.PrefixFrom(addr, addr.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if p.Addr().Is4In6() {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// avnode.short_peer(id) -> "12*AbCdEf", the first two and last six
// characters: every Ed25519 peer id starts 12D3KooW, so the tail is what
// tells peers apart in a log line.
func luaShortPeer(L *lua.LState) int {
	L.Push(lua.LString(shortPeer(L.CheckString(1))))
	return 1
}

func shortPeer(id string) string {
	if len(id) <= 10 {
		return id
	}
	return id[:2] + "*" + id[len(id)-6:]
}

// avnode.match(name, glob) -> bool
func luaMatch(L *lua.LState) int {
	L.Push(lua.LBool(globMatch(strings.ToLower(L.CheckString(2)), strings.ToLower(L.CheckString(1)))))
	return 1
}

// globMatch reports whether s matches pattern, where * matches any run of
// characters (dots included) and ? any one byte. It backtracks only to the
// last *, so its time is at most len(pattern)*len(s): a hostile pattern
// cannot make it run long.
func globMatch(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
