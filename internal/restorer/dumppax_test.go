package restorer

import (
	"archive/tar"
	"bytes"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPAXRecordLength: the length prefix counts the whole record,
// including its own digits, across the boundaries where it gains one.
func TestPAXRecordLength(t *testing.T) {
	for n := range 1200 {
		rec := paxRecord("k", strings.Repeat("v", n))
		sp := strings.IndexByte(rec, ' ')
		l, err := strconv.Atoi(rec[:sp])
		if err != nil || l != len(rec) || !strings.HasSuffix(rec, "="+strings.Repeat("v", n)+"\n") {
			t.Fatalf("value of %d bytes: record %q... says %d, is %d bytes", n, rec[:min(len(rec), 12)], l, len(rec))
		}
	}
}

// TestRawPAXHeadersRead: archive/tar reads back a hand-written sparse
// entry: its real name, times to the nanosecond, owners past the ustar
// fields' range, size and xattrs; and the entry after it.
func TestRawPAXHeadersRead(t *testing.T) {
	mtime := time.Unix(-12345, 987654321)
	h := &tar.Header{
		Name: sparsePlaceholder("dir/f"), Mode: 0o4755, Uid: 1 << 30, Gid: 7, Uname: strings.Repeat("u", 40), Gname: "g",
		ModTime: mtime, Typeflag: tar.TypeReg, Size: 512 + 5,
		PAXRecords: map[string]string{
			paxSparseMajor: "1", paxSparseMinor: "0", paxSparseName: "dir/\xff long name " + strings.Repeat("n", 300),
			paxSparseRealSize: "10005", "SCHILY.xattr.user.b": "\x00\x01=\n",
		},
	}
	raw, err := rawPAXHeaders(h)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.Write(raw)
	sparseMap := make([]byte, 512)
	copy(sparseMap, "2\n10000\n5\n10005\n0\n")
	buf.Write(sparseMap)
	buf.WriteString("hello")
	buf.Write(make([]byte, 512-5))
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "next", Typeflag: tar.TypeReg, Mode: 0o644, Size: 2})
	tw.Write([]byte("ok"))
	tw.Close()

	tr := tar.NewReader(&buf)
	got, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != h.PAXRecords[paxSparseName] || got.Size != 10005 || !got.ModTime.Equal(mtime) ||
		got.Uid != h.Uid || got.Gid != 7 || got.Uname != h.Uname || got.Mode != 0o4755 ||
		got.PAXRecords["SCHILY.xattr.user.b"] != "\x00\x01=\n" {
		t.Errorf("read back %+v", got)
	}
	data, err := io.ReadAll(tr)
	if err != nil || len(data) != 10005 || string(data[10000:]) != "hello" || bytes.ContainsFunc(data[:10000], func(r rune) bool { return r != 0 }) {
		t.Errorf("sparse data: %d bytes, %v", len(data), err)
	}
	if next, err := tr.Next(); err != nil || next.Name != "next" {
		t.Errorf("entry after the sparse one: %v, %v", next, err)
	}
}
