package qemupull

import "testing"

// fileName never panics, and gives a plain name back unchanged.
func FuzzFileName(f *testing.F) {
	f.Add(`json:{"driver": "qcow2", "file": {"driver": "file", "filename": "/tmp/rewind-qemu-1/fleece.qcow2"}}`)
	f.Add("/var/lib/disk.qcow2")
	f.Add("json:{")
	f.Fuzz(func(t *testing.T, s string) {
		got := fileName(s)
		if len(s) < 5 || s[:5] != "json:" {
			if got != s {
				t.Fatalf("%q became %q", s, got)
			}
		}
	})
}
