package testutil

import (
	"os"
	"testing"

	"github.com/rewind-backup/rewind/internal/progpath"
)

// CI reports whether the tests run under continuous integration (CI=true),
// where missing tools or a failed setup are failures, not reasons to skip.
func CI() bool { return os.Getenv("CI") == "true" }

// IsRoot reports whether the tests run as root.
func IsRoot() bool { return os.Geteuid() == 0 }

// RequireRoot skips the test unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if !IsRoot() {
		t.Skip("needs root")
	}
}

// RequireTool returns the path of the program name, looked up in PATH and
// then in /usr/sbin and /sbin (where mkfs.ext4 lives but a user's PATH may
// not lead). If it is missing the test is skipped, or failed under CI=true.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	if p := progpath.Find(name, progpath.Sbin); p != "" {
		return p
	}
	unavailable(t, "%s not found (install it, e.g. apt-get install acl attr e2fsprogs xfsprogs btrfs-progs)", name)
	return ""
}

// unavailable skips the test because something it needs is missing, or
// fails it under CI=true.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if CI() {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}
