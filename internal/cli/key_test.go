package cli

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// TestKeys: a second password opens the repository, keys are listed and
// removed, the key in use cannot be removed, and passwd replaces the
// password in use. New keys use the default (slow) key derivation, so
// this test costs a few seconds of argon2id.
func TestKeys(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 0)
	src := e.path("src")
	writeFiles(t, src, map[string][]byte{"f": []byte("x")})
	e.mustRun("backup", src)
	first := e                                             // opens with testPassword
	second := e.with("REWIND_PASSWORD", "second password") // added below

	keyList := func(e *env) []jsonKey {
		t.Helper()
		var keys []jsonKey
		checkDoc(t, "key", e.mustRun("key", "list", "--json").stdout, &keys)
		return keys
	}
	current := func(keys []jsonKey) (cur, other []string) {
		for _, k := range keys {
			if k.Current {
				cur = append(cur, k.ID)
			} else {
				other = append(other, k.ID)
			}
		}
		return cur, other
	}

	second.expectCode(ExitBadPassword, "snapshots")
	r := first.with("REWIND_NEW_PASSWORD", "second password").mustRun("key", "add")
	if !strings.Contains(string(r.stdout), "added key ") {
		t.Errorf("key add: %v", r)
	}
	second.mustRun("snapshots")
	first.mustRun("snapshots")

	keys := keyList(first)
	if len(keys) != 2 {
		t.Fatalf("want 2 keys, got %d: %+v", len(keys), keys)
	}
	firstKey, others := current(keys)
	if len(firstKey) != 1 || len(others) != 1 {
		t.Fatalf("want exactly one current key: %+v", keys)
	}
	secondKey, _ := current(keyList(second))
	if !slices.Equal(secondKey, others) {
		t.Errorf("the second password's key is %v, want %v", secondKey, others)
	}
	human := string(first.mustRun("key", "list").stdout)
	if !strings.Contains(human, firstKey[0][:8]+"*") || !strings.Contains(human, others[0][:8]+" ") {
		t.Errorf("key list should mark the current key with *:\n%s", human)
	}

	// The key in use cannot be removed, by full ID or by prefix.
	for _, ref := range []string{firstKey[0], firstKey[0][:8]} {
		r := first.expectCode(ExitFatal, "key", "remove", ref)
		if !strings.Contains(string(r.stderr), "refusing to remove the key in use") {
			t.Errorf("removing the current key: %v", r)
		}
	}
	if r := first.expectCode(ExitFatal, "key", "remove", "zz"); !strings.Contains(string(r.stderr), "matches 0 key files") {
		t.Errorf("removing an unknown key: %v", r)
	}
	// Removing the other one works, and its password stops working.
	first.mustRun("key", "remove", others[0][:8])
	if keys := keyList(first); len(keys) != 1 || keys[0].ID != firstKey[0] {
		t.Errorf("after remove: %+v", keys)
	}
	second.expectCode(ExitBadPassword, "snapshots")

	// passwd replaces the key in use: the old password fails, the new one
	// works, and there is still one key.
	pwFile := e.path("new-password")
	if err := os.WriteFile(pwFile, []byte("third password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	first.mustRun("key", "passwd", "--new-password-file", pwFile)
	first.expectCode(ExitBadPassword, "snapshots")
	third := e.with("REWIND_PASSWORD", "third password")
	if keys := keyList(third); len(keys) != 1 || !keys[0].Current || keys[0].ID == firstKey[0] {
		t.Errorf("after passwd: %+v", keys)
	}
	third.mustRun("restore", "latest", "--target", e.path("out"))
	sameFiles(t, src, e.path("out", src))

	// Without a new password and without a terminal, add says what to set.
	r = third.run("key", "add")
	if r.code != ExitFatal || !strings.Contains(string(r.stderr), "REWIND_NEW_PASSWORD") {
		t.Errorf("key add without a new password: %v", r)
	}
}
