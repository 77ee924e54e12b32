package policy

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckNesting(t *testing.T) {
	deep := func(open, close string, n int) string {
		return strings.Repeat(open, n) + strings.Repeat(close, n)
	}
	for _, tc := range []struct {
		name, src string
		line      int // 0: accepted
	}{
		{"ordinary code", "local t = { a = { b = f(g(1)) } }\nif x then y() elseif z then w() else v() end", 0},
		{"parens at the limit", "x = " + deep("(", ")", 200), 0},
		{"parens past the limit", "x = " + deep("(", ")", 201), 1},
		{"braces past the limit", "\nx = " + deep("{", "}", 201), 2},
		{"index brackets past the limit", "x = t" + deep("[ ", " ]", 201), 1}, // [[ would open a long string
		{"functions past the limit", deep("function f() ", " end", 201), 1},
		{"do blocks past the limit", deep("do ", " end ", 201), 1},
		{"repeat past the limit", deep("repeat ", " until x ", 201), 1},
		{"if past the limit", deep("if x then ", " end ", 201), 1},
		{"while and for open with do", deep("while x do ", " end ", 150) + deep("for i=1,2 do ", " end ", 150), 0},
		{"elseif chains do not add up", "if a then " + strings.Repeat("elseif b then ", 1000) + "end", 0},
		{"sequential blocks do not add up", strings.Repeat("do (f()) end ", 5000), 0},
		{"brackets in strings", `x = "` + strings.Repeat("(", 1000) + `" .. '` + strings.Repeat("{", 1000) + `'`, 0},
		{"escaped quotes", `x = "\"` + strings.Repeat("(", 1000) + `\""`, 0},
		{"long strings", "x = [[" + strings.Repeat("(", 1000) + "]] .. [==[ ]] " + strings.Repeat("[", 1000) + " ]==]", 0},
		{"comments", "-- " + strings.Repeat("(", 1000) + "\n--[[ " + strings.Repeat("do ", 1000) + " ]]\nx = 1", 0},
		{"long comment with level", "--[=[ ]] " + strings.Repeat("(", 1000) + " ]=]", 0},
		{"call with a long string", "f[[" + strings.Repeat("(", 1000) + "]]", 0},
		{"keywords inside names", strings.Repeat("local doif, endx, functions = 1 ", 500), 0},
		{"numbers with exponents", "x = 1e-5 + 0x1F + 3.5E+2", 0},
		{"line counted through strings", "x = [[\n\n]]\ny = \"a\\\nb\"\n" + "z = " + deep("(", ")", 201), 6},
	} {
		err := checkNesting([]byte(tc.src), maxNesting)
		var serr *scriptError
		switch {
		case tc.line == 0 && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.line != 0 && !errors.As(err, &serr):
			t.Errorf("%s: accepted; want it refused at line %d", tc.name, tc.line)
		case tc.line != 0 && serr.Line != tc.line:
			t.Errorf("%s: refused at line %d; want %d", tc.name, serr.Line, tc.line)
		}
	}
}
