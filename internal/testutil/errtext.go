package testutil

import (
	"regexp"
	"strings"
	"testing"
)

// storedFile matches the name of a stored file in a message:
// "snapshots/1a2b…", "data/…", or "config" after an operation.
var storedFile = regexp.MustCompile(`\b(?:keys|data|index|snapshots|locks|gc|holds|policy|damaged|labels)/[0-9a-f]{8,}\b|\b(?:save|load|stat|remove|list) (config)\b`)

// CheckNamedOnce fails the test if the message of err says the same thing
// twice: a part between ": " separators that repeats ("save snapshots/1a…:
// save snapshots/1a…: …"), or one stored file named more than once, as
// when two layers each add the operation and the file. what says which
// failure it was.
func CheckNamedOnce(t testing.TB, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	seen := map[string]bool{}
	for _, part := range strings.Split(msg, ": ") {
		if seen[part] {
			t.Errorf("%s: %q repeats %q", what, msg, part)
			return
		}
		seen[part] = true
	}
	named := map[string]bool{}
	for _, m := range storedFile.FindAllStringSubmatch(msg, -1) {
		f := m[0]
		if m[1] != "" {
			f = m[1]
		}
		if named[f] {
			t.Errorf("%s: %q names %s more than once", what, msg, f)
			return
		}
		named[f] = true
	}
}
