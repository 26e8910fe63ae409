package archiver

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/rewind-backup/rewind/internal/tree"
)

// mutation changes the file at p while the backup reads it: it is called
// after each piece is read, with the attempt and the bytes that attempt
// has read, and reports whether it acted (it is not called again for that
// attempt once it has). Where the pieces end depends on the repository's
// chunker parameters, which are random per repository, so a mutation must
// act at the first call past a threshold, never only inside a window.
type mutation func(t *testing.T, p string, attempt int, read int64) bool

// truncateTo cuts the file to size.
func truncateTo(t *testing.T, p string, size int64) {
	t.Helper()
	if err := os.Truncate(p, size); err != nil {
		t.Error(err)
	}
}

// writeAt writes data at off of the file, without truncating it.
func writeAt(t *testing.T, p string, off int64, data []byte) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	if _, err := f.WriteAt(data, off); err != nil {
		t.Error(err)
	}
}

// TestFileChangingWhileRead changes a file at a chosen point of its read,
// with real system calls on a real file, in every way a file changes under
// a backup: truncated to nothing (logrotate's copytruncate), truncated and
// written again, shrunk into its data or into a hole, grown, rewritten in
// place, and changed again on every read. The snapshot must hold what the
// file held at one moment (the moment of a complete read that saw it hold
// still), or, when it never held still, what the last read saw flagged
// changed-during-backup, with a size equal to the bytes stored. Never
// unreadable, never zeros.
func TestFileChangingWhileRead(t *testing.T) {
	const mib = 1 << 20
	big := randomBytes(31, 6*mib+4321)
	small := randomBytes(32, 100<<10)
	fresh := randomBytes(33, 5000)
	cases := []struct {
		name    string
		initial []byte
		// sparseAt, when set, writes initial at this offset, leaving a hole
		// before it.
		sparseAt int64
		mutate   mutation
		// flagged: the file never holds still, so the snapshot keeps the
		// last read, flagged. Otherwise it holds the file as it ended.
		flagged bool
	}{
		{name: "copytruncate", initial: big, mutate: func(t *testing.T, p string, attempt int, read int64) bool {
			if attempt == 1 && read >= mib {
				truncateTo(t, p, 0)
				return true
			}
			return false
		}},
		{name: "truncated then written", initial: big, mutate: func(t *testing.T, p string, attempt int, read int64) bool {
			if attempt == 1 && read >= 2*mib {
				truncateTo(t, p, 0)
				writeAt(t, p, 0, fresh)
				return true
			}
			return false
		}},
		{name: "shrunk into its data", initial: big, mutate: func(t *testing.T, p string, attempt int, read int64) bool {
			if attempt == 1 && read >= 3*mib {
				truncateTo(t, p, 2*mib+17)
				return true
			}
			return false
		}},
		{name: "small file shrunk before its one read", initial: small, mutate: func(t *testing.T, p string, attempt int, read int64) bool {
			if attempt == 1 && read == 0 {
				truncateTo(t, p, 50<<10)
				return true
			}
			return false
		}},
		{name: "sparse file shrunk into its hole", initial: big[:3*mib], sparseAt: 8 * mib, mutate: func(t *testing.T, p string, attempt int, read int64) bool {
			if attempt == 1 && read >= mib {
				truncateTo(t, p, 5*mib)
				return true
			}
			return false
		}},
		{name: "grown", initial: big, mutate: func(t *testing.T, p string, attempt int, read int64) bool {
			if attempt == 1 && read >= mib {
				writeAt(t, p, int64(len(big)), fresh)
				return true
			}
			return false
		}},
		{name: "rewritten in place", initial: big, mutate: func(t *testing.T, p string, attempt int, read int64) bool {
			if attempt == 1 && read >= 4*mib {
				writeAt(t, p, 1000, fresh)
				return true
			}
			return false
		}},
		{name: "shrinking on every read", initial: big, flagged: true, mutate: func(t *testing.T, p string, attempt int, read int64) bool {
			// Once per read, after its first chunk, wherever the
			// repository's chunker cuts it.
			if read > 0 {
				fi, err := os.Stat(p)
				if err != nil {
					t.Error(err)
					return false
				}
				truncateTo(t, p, fi.Size()-2*mib)
				return true
			}
			return false
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "src")
			p := filepath.Join(src, "file.log")
			if tc.sparseAt > 0 {
				writeFile(t, p, nil)
				writeAt(t, p, tc.sparseAt, tc.initial)
			} else {
				writeFile(t, p, tc.initial)
			}
			var mu sync.Mutex
			acted := map[int]bool{}
			readHook = func(q string, attempt int, read int64) {
				if q != p {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if acted[attempt] {
					return
				}
				if tc.mutate(t, p, attempt, read) {
					acted[attempt] = true
				}
			}
			t.Cleanup(func() { readHook = nil })
			r := newTestRepo(t, "")
			sn, _ := backup(t, r, Options{}, src)
			readHook = nil
			if len(acted) == 0 {
				t.Fatal("the file was never changed during its read: the test did not test anything")
			}
			final, err := os.ReadFile(p)
			must(t, err)

			n := lookup(t, r, sn, p)
			s := sn.Summary
			if n.Flags&tree.FlagUnreadable != 0 || len(s.Errors) != 0 {
				t.Fatalf("recorded as unreadable (flags %#x, errors %v): a file that changed is not a file that could not be read", n.Flags, s.Errors)
			}
			got := content(t, r, n)
			if uint64(len(got)) != n.Size {
				t.Errorf("node records size %d but holds %d bytes", n.Size, len(got))
			}
			if s.FilesReread != 1 || s.BytesReread > int64(len(tc.initial)+len(fresh)) {
				t.Errorf("summary: files_reread %d, bytes_reread %d; want 1, and no more than the file", s.FilesReread, s.BytesReread)
			}
			if s.BytesRead-s.BytesReread > int64(len(tc.initial)) {
				t.Errorf("first reads read %d bytes of a %d-byte file", s.BytesRead-s.BytesReread, len(tc.initial))
			}
			if !tc.flagged {
				if n.Flags != 0 || s.FilesTorn != 0 {
					t.Errorf("flags %#x, files_changed_during_backup %d: the second read saw the file hold still", n.Flags, s.FilesTorn)
				}
				if !bytes.Equal(got, final) {
					t.Errorf("snapshot holds %d bytes, not the %d the file held once it held still", len(got), len(final))
				}
				return
			}
			// It never held still: what the last read saw, flagged, and a
			// prefix of the file as that read began (the file only shrank,
			// so a prefix of the original content).
			if n.Flags != tree.FlagChanged || s.FilesTorn != 1 {
				t.Errorf("flags %#x, files_changed_during_backup %d; want FlagChanged and 1", n.Flags, s.FilesTorn)
			}
			if len(got) == 0 || !bytes.Equal(got, tc.initial[:len(got)]) {
				t.Errorf("kept %d bytes that are not a prefix of the file", len(got))
			}
		})
	}
}
