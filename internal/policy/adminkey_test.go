package policy_test

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/policy"
)

func TestKeyFileRoundTrip(t *testing.T) {
	file := filepath.Join(t.TempDir(), "admin.pem")
	key, created, err := policy.LoadOrCreateKeyFile(file)
	if err != nil || !created {
		t.Fatalf("create: %v, created %v", err, created)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %04o, want 0600", fi.Mode().Perm())
	}
	again, created, err := policy.LoadOrCreateKeyFile(file)
	if err != nil || created || !again.Equal(key) {
		t.Fatalf("second load: %v, created %v, same key %v", err, created, again.Equal(key))
	}
	if err := policy.WriteKeyFile(file, key); !errors.Is(err, fs.ErrExist) {
		t.Errorf("WriteKeyFile over an existing file: %v", err)
	}
}

func TestKeyFileRefusals(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk")
	if err := os.WriteFile(junk, []byte("my notes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := policy.LoadOrCreateKeyFile(junk); err == nil {
		t.Error("a file without a key was taken as the admin key")
	}
	if b, _ := os.ReadFile(junk); string(b) != "my notes\n" {
		t.Errorf("the file was overwritten: %q", b)
	}

	key, err := policy.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	text, err := policy.EncodeKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		open := filepath.Join(dir, "open.pem")
		if err := os.WriteFile(open, text, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := policy.ReadKeyFile(open); !errors.Is(err, policy.ErrKeyFileOpen) || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("world-readable key file: %v", err)
		}
	}
	if _, err := policy.DecodeKey(append(text, text...)); err == nil {
		t.Error("two PEM blocks accepted")
	}
	if _, err := policy.ReadKeyFile(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// TestKeyFileIsStandardPKCS8 reads the Ed25519 example key of RFC 8410
// (section 10.3), as OpenSSL writes such keys, and, when openssl is
// installed, has it read a key file rewind wrote.
func TestKeyFileIsStandardPKCS8(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "rfc8410-example.pem"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := policy.DecodeKey(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(key.Public().(ed25519.PublicKey)); got != "19bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1" {
		t.Errorf("public key %s", got)
	}

	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl is not installed")
	}
	file := filepath.Join(t.TempDir(), "admin.pem")
	mine, _, err := policy.LoadOrCreateKeyFile(file)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(openssl, "pkey", "-in", file, "-pubout", "-outform", "DER").Output()
	if err != nil {
		t.Fatalf("openssl pkey: %v", err)
	}
	if len(out) < 32 || !ed25519.PublicKey(out[len(out)-32:]).Equal(mine.Public()) {
		t.Errorf("openssl reads public key %x, want %x", out, mine.Public())
	}
}

func TestFingerprint(t *testing.T) {
	a, b := testKey("a"), testKey("b")
	fa := policy.Fingerprint(pub(a))
	if !strings.HasPrefix(fa, "SHA256:") || len(fa) != len("SHA256:")+43 {
		t.Errorf("fingerprint %q", fa)
	}
	if fa == policy.Fingerprint(pub(b)) || fa != policy.Fingerprint(pub(testKey("a"))) {
		t.Error("fingerprints do not tell keys apart")
	}
}
