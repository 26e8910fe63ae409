package cli

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// stampSize is the record a stamping writer keeps in each file: the
// wall-clock time in nanoseconds, taken just before the write, twice (so
// a torn read shows as two different halves).
const stampSize = 16

// stampWriter rewrites every file of files, in turns and as fast as it
// can, with the time of the write, until stop is closed.
func stampWriter(t *testing.T, files []string, stop <-chan struct{}, writes *atomic.Int64) {
	fds := make([]*os.File, len(files))
	for i, p := range files {
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		fds[i] = f
	}
	var rec [stampSize]byte
	for {
		for _, f := range fds {
			select {
			case <-stop:
				return
			default:
			}
			now := uint64(time.Now().UnixNano())
			binary.LittleEndian.PutUint64(rec[:8], now)
			binary.LittleEndian.PutUint64(rec[8:], now)
			if _, err := f.WriteAt(rec[:], 0); err != nil {
				t.Error(err)
				return
			}
			writes.Add(1)
		}
	}
}

// TestAtNeverRestoresLaterWrites backs up a folder several times while
// another goroutine keeps rewriting every file in it with the time of the
// write, so that each capture reads files written at every moment of its
// run. It then restores the folder --at moments inside, at the edges of
// and between the captures, and checks that no restored file holds a
// write stamped after the moment asked for: a snapshot whose capture was
// still running at T must never answer for T.
func TestAtNeverRestoresLaterWrites(t *testing.T) {
	e := newRepo(t, 0)
	src := e.path("src")
	var files []string
	contents := map[string][]byte{}
	for i := range 400 {
		name := fmt.Sprintf("d%02d/f%03d", i%20, i)
		contents[name] = make([]byte, stampSize)
		files = append(files, filepath.Join(src, filepath.FromSlash(name)))
	}
	writeFiles(t, src, contents)

	stop := make(chan struct{})
	var writes atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() { stampWriter(t, files, stop, &writes) })
	for range 3 {
		e.mustRun("backup", src)
	}
	close(stop)
	wg.Wait()
	t.Logf("%d writes during the backups", writes.Load())

	var sns []struct {
		ID      string `json:"id"`
		Summary struct {
			Start time.Time `json:"backup_start"`
			End   time.Time `json:"backup_end"`
		} `json:"summary"`
	}
	if err := json.Unmarshal(e.mustRun("snapshots", "--json").stdout, &sns); err != nil || len(sns) != 3 {
		t.Fatalf("snapshots: %v %v", sns, err)
	}
	var moments []time.Time
	for _, sn := range sns {
		s, end := sn.Summary.Start, sn.Summary.End
		moments = append(moments, s.Add(1), s.Add(end.Sub(s)/2), end.Add(-1), end, end.Add(time.Millisecond))
	}
	checked := 0
	for i, m := range moments {
		if m.Before(sns[0].Summary.End) {
			// Before the first capture ended there is nothing to restore.
			r := e.run("restore", "--at", m.UTC().Format(time.RFC3339Nano), src, "--target", e.path(fmt.Sprintf("early%d", i)))
			if r.code == 0 {
				t.Errorf("restore --at %s, before any capture ended, succeeded:\n%v", m.Format(time.RFC3339Nano), r)
			}
			continue
		}
		target := e.path(fmt.Sprintf("at%d", i))
		e.mustRun("restore", "--at", m.UTC().Format(time.RFC3339Nano), src, "--target", target)
		late := 0
		for name := range contents {
			b, err := os.ReadFile(filepath.Join(target, filepath.FromSlash(name)))
			if err != nil || len(b) != stampSize {
				t.Fatalf("%s at %s: %v (%d bytes)", name, m.Format(time.RFC3339Nano), err, len(b))
			}
			stamp := int64(binary.LittleEndian.Uint64(b[:8]))
			if stamp > m.UnixNano() {
				late++
			}
		}
		if late > 0 {
			t.Errorf("restore --at %s brought back %d files written after that moment", m.Format(time.RFC3339Nano), late)
		}
		checked++
	}
	if checked < len(moments)-5 {
		t.Errorf("only %d of %d moments were restored", checked, len(moments))
	}
}
