package inventory

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSystemPath(t *testing.T) {
	for _, c := range []struct {
		root, path, want string
		ok               bool
	}{
		{"/mnt/srv", "/mnt/srv", "/", true},
		{"/mnt/srv/", "/mnt/srv/boot/efi", "/boot/efi", true},
		{"/mnt/srv", "/mnt/srv2", "", false},
		{"/mnt/srv", "/", "", false},
		{"/mnt/srv", "/mnt", "", false},
		{"", "/boot", "/boot", true},
		{"/", "/boot", "/boot", true},
	} {
		got, ok := SystemPath(c.root, c.path)
		if got != c.want || ok != c.ok {
			t.Errorf("SystemPath(%q, %q) = %q %v, want %q %v", c.root, c.path, got, ok, c.want, c.ok)
		}
	}
}

func TestResolveIn(t *testing.T) {
	root := t.TempDir()
	write(t, root, "run/x/resolv.conf", "r")
	write(t, root, "usr/lib/os-release", "o")
	for link, target := range map[string]string{
		"etc/resolv.conf": "/run/x/resolv.conf", // absolute: inside root
		"etc/os-release":  "../usr/lib/os-release",
		"etc/escape":      "../../../../../etc/passwd", // ".." stops at root
		"etc/loop":        "/etc/loop",
	} {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(link)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	for p, want := range map[string]string{
		"/etc/resolv.conf": "run/x/resolv.conf",
		"/etc/os-release":  "usr/lib/os-release",
		"/etc/escape":      "etc/passwd",
		"/etc/missing":     "etc/missing",
		"/etc/loop":        "etc/loop",
	} {
		if got := resolveIn(root, p); got != filepath.Join(root, want) {
			t.Errorf("resolveIn(%s) = %s, want %s", p, got, filepath.Join(root, want))
		}
	}
}

func TestEFILoaderListed(t *testing.T) {
	if !efiLoaderListed("::/EFI/\n::/EFI/BOOT/\n::/EFI/BOOT/BOOTX64.EFI\n") {
		t.Error("BOOTX64.EFI not found")
	}
	if !efiLoaderListed("::/efi/debian/grubx64.efi\n") {
		t.Error("lower case not found")
	}
	for _, out := range []string{"", "::/EFI/\n::/EFI/BOOT/\n", "::/BOOTX64.EFI\n", "::/EFI/BOOT/x/y.efi\n", "::/EFI/BOOT/README.txt\n"} {
		if efiLoaderListed(out) {
			t.Errorf("a loader found in %q", out)
		}
	}
}

// Used sizes within about 12% are the same content, so that an
// inventory is not stored again for each file written; further apart
// they differ.
func TestSameContentUsedBytes(t *testing.T) {
	doc := func(used int64) *Document {
		return &Document{Version: 1, Filesystems: []Filesystem{{Device: "/dev/sda1", UsedBytes: used}}}
	}
	if !SameContent(doc(1000<<20), doc(1010<<20)) {
		t.Error("1000 MiB and 1010 MiB used differ")
	}
	if SameContent(doc(1000<<20), doc(1300<<20)) {
		t.Error("1000 MiB and 1300 MiB used are the same")
	}
	if SameContent(doc(0), doc(5)) || !SameContent(doc(7), doc(7)) {
		t.Error("small sizes")
	}
	a := doc(1000 << 20)
	SameContent(a, doc(1010<<20))
	if a.Filesystems[0].UsedBytes != 1000<<20 {
		t.Error("SameContent changed its argument")
	}
}

// FuzzResolveIn: whatever the path and the links met on the way, the
// path found is inside the root.
func FuzzResolveIn(f *testing.F) {
	f.Add("/etc/resolv.conf")
	f.Add("/../../etc/escape/x")
	f.Add("etc//loop/../../..")
	f.Add("/etc/up/up/up")
	root := f.TempDir()
	for link, target := range map[string]string{
		"etc/resolv.conf": "/run/x/resolv.conf",
		"etc/escape":      "../../../../../etc",
		"etc/loop":        "/etc/loop",
		"etc/up":          "..",
	} {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(link)), 0o755); err != nil {
			f.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, p string) {
		got := resolveIn(root, p)
		if got != root && !strings.HasPrefix(got, root+"/") {
			t.Fatalf("resolveIn(%q) = %s, outside %s", p, got, root)
		}
	})
}

// FuzzEFILoaderListed: any mdir output is read without a panic, and a
// loader is found only on a line naming an .efi file three levels down.
func FuzzEFILoaderListed(f *testing.F) {
	f.Add("::/EFI/\n::/EFI/BOOT/\n::/EFI/BOOT/BOOTX64.EFI\n")
	f.Add("::/\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, out string) {
		if efiLoaderListed(out) && !strings.Contains(strings.ToLower(out), ".efi") {
			t.Fatalf("a loader found in %q", out)
		}
	})
}
