package repository

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/id"
)

func TestKeyManagement(t *testing.T) {
	ctx := context.Background()
	r, be := newMemRepo(t)
	first := r.KeyName()
	pw2 := []byte("second password")

	if _, err := r.AddKey(ctx, nil, crypto.TestKDFParams); err == nil {
		t.Fatal("AddKey with an empty password succeeded")
	}
	second, err := r.AddKey(ctx, pw2, crypto.TestKDFParams)
	if err != nil {
		t.Fatal(err)
	}
	if r.KeyName() != first {
		t.Fatal("AddKey changed the key in use")
	}
	keys, err := r.ListKeys(ctx)
	if err != nil || len(keys) != 2 {
		t.Fatalf("ListKeys: %d keys, %v", len(keys), err)
	}
	for _, k := range keys {
		if k.Current != (k.ID.String() == first) || k.Created.IsZero() {
			t.Fatalf("key %s: %+v", k.ID.Short(), k)
		}
	}

	// Both passwords open the same repository.
	r2, err := Open(ctx, be, pw2)
	if err != nil {
		t.Fatal(err)
	}
	defer closeCodecs(r2)
	if r2.KeyName() != second.String() || r2.Config().ID != r.Config().ID {
		t.Fatalf("second password opened key %s of repository %s", r2.KeyName(), r2.Config().ID.Short())
	}
	if r2.Key().BlobID([]byte("x")) != r.Key().BlobID([]byte("x")) {
		t.Fatal("the second key file holds another master key")
	}

	// The key in use cannot be removed; another one can.
	if err := r.RemoveKey(ctx, mustParse(t, first)); err == nil {
		t.Fatal("removed the key in use")
	}
	if len(names(t, be, backend.KeyFile)) != 2 {
		t.Fatal("a refused RemoveKey removed a key")
	}
	if err := r2.RemoveKey(ctx, mustParse(t, first)); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, be, testPassword); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("removed key still opens: %v", err)
	}
	if err := r2.RemoveKey(ctx, id.ID{7}); err == nil {
		t.Fatal("removing a missing key succeeded")
	}

	// ChangePassword replaces the key in use.
	third, err := r2.ChangePassword(ctx, []byte("third"), crypto.TestKDFParams)
	if err != nil {
		t.Fatal(err)
	}
	if r2.KeyName() != third.String() {
		t.Fatalf("key in use is %s after ChangePassword to %s", r2.KeyName(), third.Short())
	}
	if _, err := Open(ctx, be, pw2); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("old password still opens: %v", err)
	}
	r3, err := Open(ctx, be, []byte("third"))
	if err != nil {
		t.Fatal(err)
	}
	defer closeCodecs(r3)
	keys, err = r3.ListKeys(ctx)
	if err != nil || len(keys) != 1 || !keys[0].Current || keys[0].ID != third {
		t.Fatalf("after ChangePassword: %+v, %v", keys, err)
	}
	if _, err := r3.ChangePassword(ctx, nil, crypto.TestKDFParams); err == nil {
		t.Fatal("ChangePassword to an empty password succeeded")
	}
	if r3.KeyName() != third.String() || len(names(t, be, backend.KeyFile)) != 1 {
		t.Fatal("a failed ChangePassword changed the keys")
	}
}

func mustParse(t *testing.T, s string) id.ID {
	t.Helper()
	i, err := id.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// TestTamperedKeyFile edits the only key file of a repository: opening
// must say which file is damaged, and not blame the password.
func TestTamperedKeyFile(t *testing.T) {
	r, dir := newLocalRepo(t)
	keyPath := filepath.Join(dir, "keys", r.KeyName())
	orig, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		change func([]byte) []byte
	}{
		{"one byte changed", func(b []byte) []byte { b[len(b)/2] ^= 1; return b }},
		{"hostname edited", func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"hostname":"`), []byte(`"hostname":"x`), 1)
		}},
		{"truncated", func(b []byte) []byte { return b[:len(b)-10] }},
		{"emptied", func([]byte) []byte { return nil }},
	}
	for _, c := range cases {
		rewrite(t, keyPath, func([]byte) []byte { return c.change(bytes.Clone(orig)) })
		_, err := openLocal(t, dir, testPassword)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "keys/"+r.KeyName()) {
			t.Errorf("%s: got %v, want ErrCorrupt naming the key file", c.name, err)
		}
		if errors.Is(err, ErrWrongPassword) {
			t.Errorf("%s: a damaged key file is reported as a wrong password: %v", c.name, err)
		}
	}
	rewrite(t, keyPath, func([]byte) []byte { return orig })
	if _, err := openLocal(t, dir, testPassword); err != nil {
		t.Fatalf("restored key file: %v", err)
	}
}

// TestTamperedKeyFileRenamed edits a key file and stores it under the hash
// of its new content, so that the name check passes.
func TestTamperedKeyFileRenamed(t *testing.T) {
	ctx := context.Background()
	r, be := newMemRepo(t)
	h := backend.Handle{Type: backend.KeyFile, Name: r.KeyName()}
	orig := memRead(t, be, h)
	store := func(change func(*crypto.KeyFile)) {
		var kf crypto.KeyFile
		if err := json.Unmarshal(orig, &kf); err != nil {
			t.Fatal(err)
		}
		change(&kf)
		b, err := json.Marshal(&kf)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names(t, be, backend.KeyFile) {
			if err := be.Remove(ctx, backend.Handle{Type: backend.KeyFile, Name: n}); err != nil {
				t.Fatal(err)
			}
		}
		memReplace(t, be, backend.Handle{Type: backend.KeyFile, Name: idOf(b).String()}, b)
	}

	// Fields the format rejects: a clear error about the file.
	store(func(kf *crypto.KeyFile) { kf.Params.Time = 0 })
	if _, err := Open(ctx, be, testPassword); !errors.Is(err, ErrCorrupt) || !errors.Is(err, crypto.ErrInvalidKeyFile) {
		t.Fatalf("invalid KDF params: got %v, want ErrCorrupt and ErrInvalidKeyFile", err)
	}
	store(func(kf *crypto.KeyFile) { kf.Version = 2 })
	if _, err := Open(ctx, be, testPassword); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "version 2") {
		t.Fatalf("key file version 2: got %v, want ErrCorrupt naming the version", err)
	}
	// Authenticated fields: indistinguishable from a wrong password.
	store(func(kf *crypto.KeyFile) { kf.Salt[0] ^= 1 })
	if _, err := Open(ctx, be, testPassword); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("changed salt: got %v, want ErrWrongPassword", err)
	}
	// Informational fields are not authenticated: the key still opens.
	store(func(kf *crypto.KeyFile) { kf.Hostname = "elsewhere" })
	r2, err := Open(ctx, be, testPassword)
	if err != nil {
		t.Fatalf("changed hostname: %v", err)
	}
	closeCodecs(r2)
}

// TestOneDamagedKeyAmongMany: a damaged key file does not lock out the
// passwords of the other key files, and is mentioned when no key opens.
func TestOneDamagedKeyAmongMany(t *testing.T) {
	r, dir := newLocalRepo(t)
	ctx := context.Background()
	damaged := r.KeyName()
	if _, err := r.AddKey(ctx, []byte("other"), crypto.TestKDFParams); err != nil {
		t.Fatal(err)
	}
	rewrite(t, filepath.Join(dir, "keys", damaged), func(b []byte) []byte { b[10] ^= 1; return b })
	if _, err := openLocal(t, dir, []byte("other")); err != nil {
		t.Fatalf("intact key: %v", err)
	}
	_, err := openLocal(t, dir, []byte("neither"))
	if !errors.Is(err, ErrWrongPassword) || !strings.Contains(err.Error(), damaged) {
		t.Fatalf("wrong password with a damaged key: got %v, want ErrWrongPassword naming %s", err, damaged)
	}
	if _, err := openLocal(t, dir, testPassword); err == nil {
		t.Fatal("the damaged key opened")
	}
}

func TestNoKeyFiles(t *testing.T) {
	r, be := newMemRepo(t)
	if err := be.Remove(context.Background(), backend.Handle{Type: backend.KeyFile, Name: r.KeyName()}); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), be, testPassword)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "no key files") {
		t.Fatalf("got %v, want ErrCorrupt saying there are no key files", err)
	}
}
