package xbstream

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
)

// spoolDir is where readAll holds interleaved files aside ("": memory).
var spoolDir = ""

type file struct {
	path string
	data []byte
}

func readAll(t testing.TB, stream []byte) ([]file, error) {
	t.Helper()
	var got []file
	err := Files(bytes.NewReader(stream), spoolDir, func(p string, r io.Reader) error {
		b, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		got = append(got, file{p, b})
		return nil
	})
	return got, err
}

func sample(t testing.TB) ([]byte, []file) {
	var b bytes.Buffer
	w := NewWriter(&b)
	w.ChunkSize = 7
	files := []file{
		{"ibdata1", bytes.Repeat([]byte("0123456789"), 5)},
		{"mysql/slow_log.CSV", nil},
		{"d/t.ibd", []byte("rows")},
		{"xtrabackup_binlog_info", []byte("mysql-bin.000001\t796\t0-1-3\n")},
	}
	for _, f := range files {
		if err := w.WriteFile(f.path, f.data); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes(), files
}

func TestFilesRoundTrip(t *testing.T) {
	stream, want := sample(t)
	got, err := readAll(t, stream)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d files, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].path != want[i].path || !bytes.Equal(got[i].data, want[i].data) {
			t.Errorf("file %d: got %s %q, want %s %q", i, got[i].path, got[i].data, want[i].path, want[i].data)
		}
	}
}

func TestFilesPartlyRead(t *testing.T) {
	stream, want := sample(t)
	var paths []string
	err := Files(bytes.NewReader(stream), spoolDir, func(p string, r io.Reader) error {
		paths = append(paths, p)
		_, err := r.Read(make([]byte, 3))
		if err != nil && err != io.EOF {
			return err
		}
		return nil
	})
	if err != nil || len(paths) != len(want) {
		t.Fatalf("paths %v, err %v", paths, err)
	}
}

func TestChecksumMismatch(t *testing.T) {
	stream, _ := sample(t)
	i := bytes.Index(stream, []byte("0123456"))
	stream[i] ^= 1
	_, err := readAll(t, stream)
	var xe *Error
	if !errors.As(err, &xe) || !strings.Contains(err.Error(), "checksum mismatch for ibdata1") {
		t.Fatalf("got %v, want a checksum error", err)
	}
}

func TestTruncated(t *testing.T) {
	stream, _ := sample(t)
	for _, cut := range []int{1, 13, 30, len(stream) / 2, len(stream) - 1} {
		_, err := readAll(t, stream[:cut])
		var xe *Error
		if !errors.As(err, &xe) {
			t.Errorf("cut at %d: got %v, want damage", cut, err)
		}
	}
	// A stream cut exactly after a payload chunk lacks the end chunk.
	var b bytes.Buffer
	w := NewWriter(&b)
	w.Payload("a", 0, []byte("x"))
	if _, err := readAll(t, b.Bytes()); err == nil || !strings.Contains(err.Error(), "no end chunk") {
		t.Fatalf("got %v, want no end chunk", err)
	}
}

// TestInterleaved: chunks of other files that come before the current
// file's end (mariabackup's redo log copy) are held aside and handed over
// after it, in memory and through a spool file.
func TestInterleaved(t *testing.T) {
	for _, dir := range []string{"", t.TempDir()} {
		spoolDir = dir
		big := bytes.Repeat([]byte("redo"), 3<<20) // 12 MiB: beyond the memory part
		var b bytes.Buffer
		w := NewWriter(&b)
		w.Payload("a", 0, []byte("x"))
		w.Payload("ib_logfile0", 0, big[:1<<20])
		w.Payload("a", 1, []byte("y"))
		w.Payload("ib_logfile0", 1<<20, big[1<<20:5<<20])
		w.End("a")
		w.Payload("b", 0, []byte("z"))
		w.Payload("ib_logfile0", 5<<20, big[5<<20:])
		w.Payload("c", 0, []byte("q")) // a third file, started while ib_logfile0 is held
		w.End("b")
		w.End("ib_logfile0")
		w.End("c")
		got, err := readAll(t, b.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		want := []file{{"a", []byte("xy")}, {"b", []byte("z")}, {"ib_logfile0", big}, {"c", []byte("q")}} // held-aside files in the order they end
		if len(got) != len(want) {
			t.Fatalf("got %d files", len(got))
		}
		for i := range want {
			if got[i].path != want[i].path || !bytes.Equal(got[i].data, want[i].data) {
				t.Errorf("file %d: got %s (%d bytes), want %s (%d bytes)", i, got[i].path, len(got[i].data), want[i].path, len(want[i].data))
			}
		}
		if dir != "" {
			left, _ := os.ReadDir(dir)
			if len(left) != 0 {
				t.Errorf("spool files left: %v", left)
			}
		}
	}
	spoolDir = ""
	// A held-aside file that never ends is an error.
	var b bytes.Buffer
	w := NewWriter(&b)
	w.Payload("a", 0, []byte("x"))
	w.Payload("b", 0, []byte("y"))
	w.End("a")
	if _, err := readAll(t, b.Bytes()); err == nil || !strings.Contains(err.Error(), "inside b (no end chunk)") {
		t.Fatalf("got %v", err)
	}
}

func TestPayloadsInOrder(t *testing.T) {
	for _, second := range []uint64{0, 2, 9} {
		var b bytes.Buffer
		w := NewWriter(&b)
		w.Payload("a", 0, []byte("xyz"))
		w.Payload("a", second, []byte("y"))
		w.End("a")
		if _, err := readAll(t, b.Bytes()); err == nil || !strings.Contains(err.Error(), "payloads must follow each other") {
			t.Fatalf("second payload at %d: got %v", second, err)
		}
	}
}

func TestBadPaths(t *testing.T) {
	for _, p := range []string{"/etc/passwd", "../x", "a/../../x", "", "."} {
		var b bytes.Buffer
		NewWriter(&b).WriteFile(p, []byte("x"))
		if _, err := readAll(t, b.Bytes()); err == nil {
			t.Errorf("path %q accepted", p)
		}
	}
}

func TestUnknownType(t *testing.T) {
	var b bytes.Buffer
	w := NewWriter(&b)
	w.WriteFile("a", []byte("x"))
	s := b.Bytes()
	s[9] = 'S'
	if _, err := readAll(t, s); err == nil || !strings.Contains(err.Error(), "unknown chunk type") {
		t.Fatalf("got %v", err)
	}
}

// FuzzFiles feeds arbitrary bytes to the decoder: it returns files or an
// error, never panics, and a stream it accepts decodes the same again
// once re-encoded.
func FuzzFiles(f *testing.F) {
	stream, _ := sample(f)
	f.Add(stream)
	f.Add(stream[:40])
	f.Add([]byte(Magic + "\x00E\x01\x00\x00\x00a"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := readAll(t, b)
		if err != nil {
			return
		}
		var re bytes.Buffer
		w := NewWriter(&re)
		for _, fl := range got {
			if err := w.WriteFile(fl.path, fl.data); err != nil {
				t.Fatal(err)
			}
		}
		again, err := readAll(t, re.Bytes())
		if err != nil || len(again) != len(got) {
			t.Fatalf("re-encoded stream: %v (%d files, had %d)", err, len(again), len(got))
		}
		for i := range got {
			if again[i].path != got[i].path || !bytes.Equal(again[i].data, got[i].data) {
				t.Fatalf("file %d differs after re-encoding", i)
			}
		}
	})
}
