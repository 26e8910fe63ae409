package rescue

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeKernel is a kernel file and an empty module tree: enough for
// Build, which then lists every module as missing.
func fakeKernel(t *testing.T) (kernel, modules string) {
	dir := t.TempDir()
	kernel = filepath.Join(dir, "vmlinuz")
	if err := os.WriteFile(kernel, []byte("not a kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	modules = filepath.Join(dir, "modules")
	if err := os.MkdirAll(filepath.Join(modules, "kernel"), 0o755); err != nil {
		t.Fatal(err)
	}
	return kernel, modules
}

// TestBuildBakesInConfig: --config puts the recover configuration and
// the password file it names into the image, readable by root only; a
// configuration with an unknown key is refused before anything is
// written. busybox stands in for the static rewind.
func TestBuildBakesInConfig(t *testing.T) {
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("no /bin/busybox (busybox-static)")
	}
	kernel, modules := fakeKernel(t)
	dir := t.TempDir()
	pw := filepath.Join(dir, "password")
	os.WriteFile(pw, []byte("secret\n"), 0o644) // made 0600 in the image
	cfg := filepath.Join(dir, "recover.conf")
	os.WriteFile(cfg, []byte("repository: /srv/repo\npassword-file: "+pw+"\ndisks: [/dev/vda]\n"), 0o600)
	bad := filepath.Join(dir, "bad.conf")
	os.WriteFile(bad, []byte("repositry: /srv/repo\n"), 0o600)

	out := filepath.Join(dir, "out-bad")
	_, err := Build(context.Background(), Options{Out: out, Kernel: kernel, Modules: modules, Rewind: "/bin/busybox", Config: bad})
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "repositry") {
		t.Fatalf("err = %v, want one naming the file and the unknown key", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("the output folder was made: %v", err)
	}

	out = filepath.Join(dir, "out")
	res, err := Build(context.Background(), Options{Out: out, Kernel: kernel, Modules: modules, Rewind: "/bin/busybox", Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(res.Missing, ","), "module ext4") {
		t.Errorf("missing = %v, want the modules of the empty tree", res.Missing)
	}
	cmd := exec.Command("sh", "-c", "zcat "+res.Initrd+" | cpio -itv --quiet")
	list, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("list the initramfs: %v: %s", err, list)
	}
	for _, want := range []struct{ mode, path string }{
		{"-rw-------", strings.TrimPrefix(ConfigPath, "/")},
		{"-rw-------", (&image{usrMerged: newImage().usrMerged}).canon(pw)},
		{"-rwxr-xr-x", "init"},
		{"-rwxr-xr-x", "usr/local/bin/rewind"},
		{"-rw-r--r--", "etc/rescue-missing"},
	} {
		found := false
		for _, l := range strings.Split(string(list), "\n") {
			f := strings.Fields(l)
			found = found || len(f) > 0 && f[0] == want.mode && f[len(f)-1] == want.path
		}
		if !found {
			t.Errorf("the initramfs has no %s %s", want.mode, want.path)
		}
	}
	readme, _ := os.ReadFile(res.Readme)
	if !strings.Contains(string(readme), "qemu-system-x86_64") || !strings.Contains(string(readme), "module ext4") {
		t.Errorf("README.txt lacks the QEMU line or the missing parts:\n%s", readme)
	}
}
