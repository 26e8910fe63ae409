package cli

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// hostState is what restore --at T without PATH must give back: every
// file below a backed-up path, as its newest backup holds it. It is kept
// as the backups are made: backing up P replaces what is known below P.
type hostState map[string][]byte

// backedUp records a backup of dir (an absolute path) as it is now.
func (s hostState) backedUp(t *testing.T, dir string) hostState {
	t.Helper()
	next := maps.Clone(s)
	rel := strings.TrimPrefix(dir, "/")
	for k := range next {
		if strings.HasPrefix(k, rel+"/") {
			delete(next, k)
		}
	}
	for name, data := range readFiles(t, dir) {
		next[rel+"/"+name] = data
	}
	return next
}

func chmod(t *testing.T, p string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

// TestRestoreAtEverything: restore --at T without PATH restores every
// path the host backed up, each from its own newest backup ended by T.
// /etc and /srv/www are backed up at different times, then /srv whole
// (which holds /srv/www), then /srv/www again; each moment is restored
// and compared with what each path held then.
func TestRestoreAtEverything(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 0)
	host := e.path("host")
	etc, srv, www := filepath.Join(host, "etc"), filepath.Join(host, "srv"), filepath.Join(host, "srv", "www")
	type moment struct {
		at    string
		state hostState
	}
	var moments []moment
	state := hostState{}
	backup := func(dir string) {
		e.mustRun("backup", dir)
		state = state.backedUp(t, dir)
		moments = append(moments, moment{time.Now().UTC().Format(time.RFC3339Nano), state})
	}

	writeFiles(t, etc, map[string][]byte{"hosts": []byte("127.0.0.1 one\n"), "nginx/nginx.conf": []byte("worker 1;\n")})
	writeFiles(t, srv, map[string][]byte{"other/readme": []byte("other, first\n")})
	backup(etc)
	writeFiles(t, www, map[string][]byte{"index.html": []byte("<p>one</p>\n"), "img/logo.bin": randomBytes(3, 150<<10)})
	backup(www)
	writeFiles(t, etc, map[string][]byte{"hosts": []byte("127.0.0.1 two\n"), "resolv.conf": []byte("nameserver 10.0.0.1\n")})
	backup(etc)
	writeFiles(t, srv, map[string][]byte{"other/readme": []byte("other, second\n")})
	chmod(t, srv, 0o750)
	backup(srv)
	// The backup of /srv/www that follows records /srv as it is then; the
	// backup of /srv answers for /srv itself.
	chmod(t, srv, 0o711)
	writeFiles(t, www, map[string][]byte{"index.html": []byte("<p>two</p>\n")})
	removeAll(t, filepath.Join(www, "img"))
	backup(www)
	// The live tree moves on; no restore may see it.
	writeFiles(t, etc, map[string][]byte{"hosts": []byte("not backed up\n")})
	writeFiles(t, srv, map[string][]byte{"other/readme": []byte("not backed up\n"), "www/index.html": []byte("not backed up\n")})

	for i, m := range moments {
		target := e.path("restore", string(rune('a'+i)))
		r := e.mustRun("restore", "--at", m.at, "--target", target)
		sameAsMoment(t, "moment "+string(rune('0'+i)), m.state, target)
		if fi, err := os.Stat(filepath.Join(target, srv)); i >= 3 && (err != nil || fi.Mode().Perm() != 0o750) {
			t.Errorf("moment %d: %s restored as %v (%v), want the mode of the backup of /srv, 0750", i, srv, fi.Mode(), err)
		}
		if !strings.Contains(string(r.stderr), etc+" at ") {
			t.Errorf("moment %d: restore --at does not say which snapshot answered %s:\n%s", i, etc, r.stderr)
		}
		if !strings.Contains(string(r.stdout), "/s)") {
			t.Errorf("moment %d: the summary gives no throughput:\n%s", i, r.stdout)
		}
	}

	// Over an older restore, --overwrite --delete makes the target the
	// newest moment: what /srv's snapshot lacks below /srv/www (answered
	// by a newer snapshot) must not be deleted, and what the newer one
	// lacks must go.
	target := e.path("restore", "over")
	e.mustRun("restore", "--at", moments[1].at, "--target", target)
	e.expectCode(ExitFatal, "restore", "--at", moments[4].at, "--target", target)
	e.mustRun("restore", "--at", moments[4].at, "--target", target, "--overwrite", "--delete")
	sameAsMoment(t, "newest over an older restore", moments[4].state, target)

	// --json: one summary per path, naming it and the snapshot that
	// answered it, in the documented schema.
	var sns []jsonSnapshot
	decodeStrict(t, e.mustRun("snapshots", "--json").stdout, &sns)
	answered := map[string]string{}
	for _, l := range jsonLines(t, e.mustRun("restore", "--json", "--at", moments[4].at, "--target", e.path("restore", "json"))) {
		if l.obj["message_type"] != "summary" {
			continue
		}
		var s jsonRestoreSummary
		checkDoc(t, "restore.summary", l.raw, &s)
		for _, sn := range sns {
			if sn.ID == s.SnapshotID {
				answered[s.Path] = strings.Join(sn.Paths, ",")
			}
		}
	}
	want := map[string]string{etc: etc, srv: srv, www: www}
	if !maps.Equal(answered, want) {
		t.Errorf("restore --json --at: paths answered by snapshots of %v, want %v", answered, want)
	}

	// Before the first backup had ended there is nothing to restore.
	r := e.expectCode(ExitFatal, "restore", "--at", "2020-01-01T00:00:00Z", "--target", e.path("restore", "none"))
	if !strings.Contains(string(r.stderr), "had finished by") {
		t.Errorf("restore --at before every snapshot: %v", r)
	}
	if _, err := os.Stat(e.path("restore", "none")); !os.IsNotExist(err) {
		t.Error("a refused restore created its target")
	}
}
