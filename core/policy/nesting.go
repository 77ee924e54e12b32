package policy

import "fmt"

// maxNesting bounds how deeply a script's brackets and blocks may nest.
// gopher-lua's parser and compiler recurse once per level, and a source nested
// a hundred thousand deep overflows the goroutine stack: a fatal error that no
// recover catches. Real policies nest a handful of levels.
const maxNesting = 200

// checkNesting scans src as Lua tokens, skipping strings and comments, and
// fails at the first line where ( [ { and blocks nest deeper than limit.
// Blocks open with function, do, if and repeat and close with end and until;
// if rather than then opens, since elseif…then shares its if's end.
func checkNesting(src []byte, limit int) error {
	s := nestScanner{src: src, line: 1}
	for s.i < len(s.src) {
		s.depth += s.next()
		if s.depth > limit {
			return &scriptError{Line: s.line, Msg: fmt.Sprintf("brackets and blocks nest deeper than %d levels; flatten the code", limit)}
		}
	}
	return nil
}

type nestScanner struct {
	src   []byte
	i     int
	line  int
	depth int
}

// next consumes one token and returns how it changes the nesting depth.
func (s *nestScanner) next() int {
	c := s.src[s.i]
	switch {
	case c == '\n':
		s.line++
		s.i++
	case c == '-' && s.peek(1) == '-':
		s.skipComment()
	case c == '"' || c == '\'':
		s.skipQuoted(c)
	case c == '[':
		if level, ok := s.longBracket(); ok {
			s.skipLong(level)
			return 0
		}
		s.i++
		return 1
	case c == '(' || c == '{':
		s.i++
		return 1
	case c == ')' || c == ']' || c == '}':
		s.i++
		return -1
	case isIdentStart(c):
		return keywordDepth(s.word())
	case isDigit(c):
		s.skipNumber()
	default:
		s.i++
	}
	return 0
}

func (s *nestScanner) peek(ahead int) byte {
	if s.i+ahead < len(s.src) {
		return s.src[s.i+ahead]
	}
	return 0
}

// longBracket reports whether a long bracket [[ or [==[ starts at s.i, and
// its level (the number of =).
func (s *nestScanner) longBracket() (int, bool) {
	j := s.i + 1
	for j < len(s.src) && s.src[j] == '=' {
		j++
	}
	if j < len(s.src) && s.src[j] == '[' {
		return j - s.i - 1, true
	}
	return 0, false
}

// skipLong skips a long string or comment opened at s.i, up to its matching
// ]==] or the end of the source.
func (s *nestScanner) skipLong(level int) {
	s.i += level + 2
	for s.i < len(s.src) {
		switch s.src[s.i] {
		case '\n':
			s.line++
		case ']':
			if s.closesLong(level) {
				s.i += level + 2
				return
			}
		}
		s.i++
	}
}

func (s *nestScanner) closesLong(level int) bool {
	j := s.i + 1
	for n := 0; n < level; n++ {
		if j >= len(s.src) || s.src[j] != '=' {
			return false
		}
		j++
	}
	return j < len(s.src) && s.src[j] == ']'
}

func (s *nestScanner) skipComment() {
	s.i += 2
	if s.i < len(s.src) && s.src[s.i] == '[' {
		if level, ok := s.longBracket(); ok {
			s.skipLong(level)
			return
		}
	}
	for s.i < len(s.src) && s.src[s.i] != '\n' {
		s.i++
	}
}

// skipQuoted skips a short string; an unfinished one ends at the line's end,
// where the parser will report it.
func (s *nestScanner) skipQuoted(quote byte) {
	s.i++
	for s.i < len(s.src) {
		c := s.src[s.i]
		switch {
		case c == quote:
			s.i++
			return
		case c == '\n':
			return
		case c == '\\' && s.i+1 < len(s.src):
			if s.src[s.i+1] == '\n' {
				s.line++
			}
			s.i++
		}
		s.i++
	}
}

func (s *nestScanner) word() string {
	start := s.i
	for s.i < len(s.src) && (isIdentStart(s.src[s.i]) || isDigit(s.src[s.i])) {
		s.i++
	}
	return string(s.src[start:s.i])
}

// skipNumber skips a numeral, including hex digits and an exponent's sign, so
// that 1e-5 is not read as 1e, minus, 5.
func (s *nestScanner) skipNumber() {
	for s.i < len(s.src) {
		c := s.src[s.i]
		switch {
		case isIdentStart(c) || isDigit(c) || c == '.':
			s.i++
			if (c == 'e' || c == 'E' || c == 'p' || c == 'P') && (s.peek(0) == '+' || s.peek(0) == '-') {
				s.i++
			}
		default:
			return
		}
	}
}

func keywordDepth(word string) int {
	switch word {
	case "function", "do", "if", "repeat":
		return 1
	case "end", "until":
		return -1
	}
	return 0
}

func isIdentStart(c byte) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
