package cpio

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// TestArchiveListsWithCpio: GNU cpio reads what the writer writes, names,
// types and link targets included.
func TestArchiveListsWithCpio(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.Dir("bin", 0o755)
	w.File("bin/hello", 0o755, []byte("odd length"))
	w.Symlink("bin/sh", "hello")
	w.Dir("dev", 0o755)
	w.CharDev("dev/console", 0o600, 5, 1)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if buf.Len()%4 != 0 {
		t.Errorf("archive length %d is not a multiple of 4", buf.Len())
	}
	if err := w.File("/abs", 0o644, nil); err == nil {
		t.Error("an absolute name was accepted")
	}
	cpioBin, err := exec.LookPath("cpio")
	if err != nil {
		t.Skip("no cpio program to read the archive back")
	}
	cmd := exec.Command(cpioBin, "-itv", "--quiet")
	cmd.Stdin = bytes.NewReader(buf.Bytes())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -it: %v: %s", err, out)
	}
	s := string(out)
	for _, want := range []string{"drwxr-xr-x", "bin/hello", "bin/sh -> hello", "crw-------", "dev/console"} {
		if !strings.Contains(s, want) {
			t.Errorf("cpio -itv lacks %q:\n%s", want, s)
		}
	}
}
