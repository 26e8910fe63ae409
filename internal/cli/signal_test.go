package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBackupInterrupted stops a real backup of a tree large enough to
// store many packs with a real SIGINT (as Ctrl-C sends) or SIGTERM, once
// some packs are stored. The backup says "interrupted", exits 130 or 143
// as a shell reports, leaves no lock, and the repository passes check;
// the next backup reuses the packs the interrupted one had stored, as it
// does after a kill.
func TestBackupInterrupted(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
		name string
	}{
		{syscall.SIGINT, 130, "SIGINT"},
		{syscall.SIGTERM, 143, "SIGTERM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newRepo(t, crashPackSize)
			src := e.path("src")
			files := map[string][]byte{}
			// 80 MiB of incompressible data in files of several sizes:
			// about 80 packs of 1 MiB.
			for i := range 20 {
				files[fmt.Sprintf("d%d/f%02d.bin", i%3, i)] = randomBytes(uint64(i)+uint64(tc.sig)<<8, (3<<20)+i*(64<<10))
			}
			writeFiles(t, src, files)

			c := e.cmd("backup", "--host", "sig-test", src)
			var stdout, stderr bytes.Buffer
			c.Stdout, c.Stderr = &stdout, &stderr
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- c.Wait() }()
			// Send the signal once the backup has stored a few packs.
			var err error
			for waited := false; !waited; {
				select {
				case err = <-done:
					t.Fatalf("the backup ended before it stored 3 packs (%v): the data set is too small\n%s%s", err, stdout.Bytes(), stderr.Bytes())
				case <-time.After(5 * time.Millisecond):
					if countFiles(t, e.path("repo", "data")) >= 3 {
						waited = true
					}
				}
			}
			if err := c.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			err = <-done
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != tc.code {
				t.Fatalf("backup after %s: %v, want exit status %d\nstdout: %s\nstderr: %s", tc.name, err, tc.code, stdout.Bytes(), stderr.Bytes())
			}
			if want := "rewind: interrupted (" + tc.name + ")\n"; stderr.String() != want {
				t.Errorf("stderr = %q, want %q", stderr.String(), want)
			}
			if strings.Contains(stdout.String()+stderr.String(), "context canceled") {
				t.Errorf("output says context canceled:\n%s%s", stdout.Bytes(), stderr.Bytes())
			}
			if n := countFiles(t, e.path("repo", "locks")); n != 0 {
				t.Errorf("%d lock files left after the interrupted backup", n)
			}
			kept := countFiles(t, e.path("repo", "data"))
			if kept < 3 {
				t.Fatalf("%d packs left after the interrupt, want the 3 or more it had stored", kept)
			}
			e.mustRun("check", "--read-data")

			sum := backupSummary(t, e, src)
			if sum.DataAdded >= sum.TotalBytes {
				t.Errorf("the next backup added %d bytes of %d: it did not reuse the %d packs the interrupted one stored",
					sum.DataAdded, sum.TotalBytes, kept)
			}
			e.mustRun("check", "--read-data")
		})
	}
}

// countFiles counts the stored files below dir (0 if it does not
// exist), leaving out the local backend's temporary files (.tmp-*).
func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := walkFiles(dir, func() { n++ })
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return n
}

func walkFiles(dir string, f func()) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		switch {
		case e.IsDir():
			if err := walkFiles(dir+"/"+e.Name(), f); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		case e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".tmp-"):
			f()
		}
	}
	return nil
}
