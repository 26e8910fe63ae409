package testutil

import (
	"os"
	"testing"
)

// The guest disk is built (or found in the cache), of its size, sparse,
// with a bootable MBR. Booting it is what the instant tests do.
func TestGuestDisk(t *testing.T) {
	p := GuestDisk(t)
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != GuestDiskSize {
		t.Fatalf("size %d, want %d", st.Size(), GuestDiskSize)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if b[510] != 0x55 || b[511] != 0xaa || b[446] != 0x80 {
		t.Fatalf("no active MBR partition: % x", b[446:462])
	}
	if GuestDisk(t) != p {
		t.Fatal("a second call built another disk")
	}
}
