package password

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := map[string]string{
		"plain":        "tr0ub4dor&3",
		"newline":      "tr0ub4dor&3\n",
		"crlf":         "tr0ub4dor&3\r\nsecond line ignored\r\n",
		"more lines":   "tr0ub4dor&3\nnot part of it\n",
		"inner spaces": "correct horse battery staple\n",
	}
	for name, content := range good {
		s := Setting{Name: "--password-file", Kind: File, Flag: true, Value: write(name, content)}
		pw, err := ReadFile(s)
		want := strings.TrimRight(strings.SplitN(content, "\n", 2)[0], "\r")
		if err != nil || string(pw) != want {
			t.Errorf("%s: got %q, %v; want %q", name, pw, err, want)
		}
	}

	empty := map[string]string{
		"empty":            "",
		"newline only":     "\n",
		"spaces":           "   ",
		"whitespace lines": " \t\n\r\n  \n",
		"blank first line": "\nsecret-on-line-two\n",
		"spaces then text": "   \nsecret\n",
	}
	for name, content := range empty {
		p := write("e-"+strings.ReplaceAll(name, " ", "-"), content)
		_, err := ReadFile(Setting{Name: "REWIND_PASSWORD_FILE", Kind: File, Value: p})
		if !errors.Is(err, ErrEmpty) {
			t.Errorf("%s: got %v, want ErrEmpty", name, err)
			continue
		}
		if !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "REWIND_PASSWORD_FILE") || !strings.Contains(err.Error(), "first line") {
			t.Errorf("%s: %q does not name the file and the setting or say what to do", name, err)
		}
	}

	missing := filepath.Join(dir, "no-such-file")
	_, err := ReadFile(Setting{Name: "--password-file", Kind: File, Flag: true, Value: missing})
	if err == nil || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "--password-file") {
		t.Errorf("missing file: %v", err)
	}

	// A folder cannot be read as a file, even by root.
	_, err = ReadFile(Setting{Name: "--password-file", Kind: File, Flag: true, Value: dir})
	if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "cannot be read") {
		t.Errorf("a folder: %v", err)
	}
	if os.Geteuid() != 0 {
		locked := write("locked", "secret\n")
		if err := os.Chmod(locked, 0); err != nil {
			t.Fatal(err)
		}
		_, err = ReadFile(Setting{Name: "--password-file", Kind: File, Flag: true, Value: locked})
		if err == nil || !strings.Contains(err.Error(), "permissions") {
			t.Errorf("an unreadable file: %v", err)
		}
	}
}
