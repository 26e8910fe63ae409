package runbook

import (
	"strings"
	"unicode"
)

// Inline text in a Doc is plain text in which values shown as code (a
// device, a command, a snapshot ID) are wrapped by C. The markers are
// private-use runes, which C removes from the values it wraps, so no value
// can open or close a code span.
const (
	codeOpen  = '\uE000'
	codeClose = '\uE001'
)

// C marks s as code in inline text.
func C(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == codeOpen || r == codeClose {
			return -1
		}
		return r
	}, s)
	return string(codeOpen) + s + string(codeClose)
}

// segment is a run of inline text: plain or code.
type segment struct {
	Code bool
	Text string
}

// segments splits inline text at its code markers. Control characters
// (a newline in a label) become spaces: a value never breaks a line.
func segments(s string) []segment {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	var out []segment
	for s != "" {
		i := strings.IndexRune(s, codeOpen)
		if i < 0 {
			out = append(out, segment{Text: s})
			break
		}
		if i > 0 {
			out = append(out, segment{Text: s[:i]})
		}
		s = s[i+len(string(codeOpen)):]
		j := strings.IndexRune(s, codeClose)
		if j < 0 {
			j = len(s)
		}
		out = append(out, segment{Code: true, Text: s[:j]})
		s = s[j:]
		s = strings.TrimPrefix(s, string(codeClose))
	}
	return out
}

// plain returns inline text without its code markers, for JSON and
// comparisons.
func plain(s string) string {
	var b strings.Builder
	for _, sg := range segments(s) {
		b.WriteString(sg.Text)
	}
	return b.String()
}

// shellQuote quotes s for a POSIX shell when it needs it, so that a
// command in a runbook can be pasted whatever a name holds.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@,+%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// cmd joins a command's words, quoting each as the shell needs.
func cmd(words ...string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = shellQuote(w)
	}
	return strings.Join(q, " ")
}
