package archiver

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestBlockDelta changes 8 KiB in the middle of a 4 MiB file and grows
// it: with BlockDelta naming the changed range, the backup reads only the
// chunks that meet it and the grown tail, and the stored content is the
// file's. Told nothing changed, the backup keeps the parent's bytes: the
// ranges are what decides, which the last step shows.
func TestBlockDelta(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	p := filepath.Join(src, "rel")
	data := randomBytes(1, 4<<20)
	writeFile(t, p, data)
	r := newTestRepo(t, "")
	sn1, _ := backup(t, r, Options{LargeFile: 1}, src)

	const at = 1<<20 + 3*8192
	data2 := append([]byte(nil), data...)
	copy(data2[at:at+8192], randomBytes(2, 8192))
	data2 = append(data2, randomBytes(3, 20000)...)
	writeFile(t, p, data2)
	os.Chtimes(p, time.Now(), time.Now().Add(time.Second))

	var asked []string
	delta := func(path string, prevSize, size int64) ([]ByteRange, bool) {
		asked = append(asked, path)
		if prevSize != int64(len(data)) || size != int64(len(data2)) {
			t.Errorf("sizes %d, %d", prevSize, size)
		}
		return []ByteRange{{Off: at, Len: 8192}}, true
	}
	sn2, a := backup(t, r, Options{LargeFile: 1, Parent: sn1, BlockDelta: delta}, src)
	if got := content(t, r, lookup(t, r, sn2, p)); !bytes.Equal(got, data2) {
		t.Fatalf("content differs from the file (%d bytes, want %d)", len(got), len(data2))
	}
	st := a.DeltaStats()
	t.Logf("delta: %+v, summary read %d", st, sn2.Summary.BytesRead)
	if st.Files != 1 || st.BytesRead+st.BytesReused != int64(len(data2)) || st.BytesRead > 300<<10 || sn2.Summary.BytesRead != st.BytesRead {
		t.Errorf("delta stats %+v, summary bytes read %d", st, sn2.Summary.BytesRead)
	}
	if len(asked) != 1 {
		t.Errorf("asked about %v", asked)
	}

	// The same change again, but BlockDelta names no range: the parent's
	// chunks are kept, so the stored content is the old one there.
	copy(data2[at:at+8192], randomBytes(4, 8192))
	writeFile(t, p, data2)
	os.Chtimes(p, time.Now(), time.Now().Add(2*time.Second))
	sn3, _ := backup(t, r, Options{LargeFile: 1, Parent: sn2, BlockDelta: func(string, int64, int64) ([]ByteRange, bool) { return nil, true }}, src)
	if got := content(t, r, lookup(t, r, sn3, p)); bytes.Equal(got, data2) {
		t.Fatalf("no range named, yet the changed bytes were read")
	}
	// ok false: read whole.
	os.Chtimes(p, time.Now(), time.Now().Add(3*time.Second))
	sn4, a4 := backup(t, r, Options{LargeFile: 1, Parent: sn3, BlockDelta: func(string, int64, int64) ([]ByteRange, bool) { return nil, false }}, src)
	if got := content(t, r, lookup(t, r, sn4, p)); !bytes.Equal(got, data2) || a4.DeltaStats().Files != 0 {
		t.Fatalf("whole read: content equal %v, stats %+v", bytes.Equal(got, data2), a4.DeltaStats())
	}
}
