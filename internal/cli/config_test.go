package cli

import (
	"context"
	"crypto/ed25519"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/policy"
)

type jsonConfig struct {
	MinRetentionSeconds int64     `json:"min_retention_seconds"`
	AdminKeyFingerprint string    `json:"admin_key_fingerprint"`
	PolicySeq           int64     `json:"policy_seq"`
	PolicyFile          string    `json:"policy_file"`
	PolicyTime          time.Time `json:"policy_time"`
	IgnoredPolicyFiles  []string  `json:"ignored_policy_files"`
}

// The config schema is registered here, next to its command's test, so
// that TestJSONDocsMatchStrictStructs checks it against docs/JSON.md.
func init() { schemaTypes["config"] = reflect.TypeFor[jsonConfig]() }

// configJSON runs config --json and checks it against the documented
// schema.
func configJSON(t *testing.T, e *env, args ...string) jsonConfig {
	t.Helper()
	var c jsonConfig
	checkDoc(t, "config", e.mustRun(append([]string{"config", "--json"}, args...)...).stdout, &c)
	return c
}

const thirtyDays = 30 * 24 * time.Hour

func TestInitWithMinRetention(t *testing.T) {
	t.Parallel()
	e := newEnv(t).with("REWIND_PASSWORD", testPassword)
	repo, key := e.path("repo"), e.path("admin.pem")

	// The flags go together; a refused init creates nothing.
	r := e.expectCode(ExitFatal, "init", "--repo", repo, "--min-retention", "30d")
	if !strings.Contains(string(r.stderr), "--admin-key-file") {
		t.Errorf("init without a key file: %v", r)
	}
	e.expectCode(ExitFatal, "init", "--repo", repo, "--admin-key-file", key)
	e.expectCode(ExitFatal, "init", "--repo", repo, "--min-retention", "6m", "--admin-key-file", key)
	// A key file that holds no key stops init before the repository
	// exists, and is left alone.
	junk := e.path("junk.pem")
	if err := os.WriteFile(junk, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.expectCode(ExitFatal, "init", "--repo", repo, "--min-retention", "30d", "--admin-key-file", junk)
	if b, _ := os.ReadFile(junk); string(b) != "not a key\n" {
		t.Errorf("junk key file changed: %q", b)
	}
	if _, err := os.Stat(repo); !os.IsNotExist(err) {
		t.Fatalf("a refused init left %s behind (%v)", repo, err)
	}

	r = e.mustRun("init", "--repo", repo, "--min-retention", "30d", "--admin-key-file", key)
	if !strings.Contains(string(r.stderr), "Created the admin key in "+key) {
		t.Errorf("init does not tell about the new key: %v", r)
	}
	fi, err := os.Stat(key)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin key file: %v, mode %v", err, fi.Mode())
	}
	e = e.with("REWIND_REPOSITORY", repo)
	c := configJSON(t, e)
	if c.MinRetentionSeconds != int64(thirtyDays/time.Second) || c.PolicySeq != 1 || !strings.HasPrefix(c.AdminKeyFingerprint, "SHA256:") {
		t.Errorf("config after init: %+v", c)
	}
	if files := repoFiles(t, e, "policy"); len(files) != 1 || files[0] != c.PolicyFile {
		t.Errorf("policy files %q, config names %s", files, c.PolicyFile)
	}

	// Young snapshots are kept, with the reason.
	sns := backups(t, e, 2)
	g := forgetDryRun(t, e, "--keep-last", "1")
	kept := keptReasons(g)
	if !slices.Equal(kept[sns[0].ID], []string{"minimum retention 30d"}) ||
		!slices.Equal(kept[sns[1].ID], []string{"last snapshot", "minimum retention 30d"}) || len(g.Remove) != 0 {
		t.Errorf("kept %q, removed %d", kept, len(g.Remove))
	}
	r = e.mustRun("forget", "--keep-last", "1", "--dry-run")
	if !strings.Contains(string(r.stdout), "minimum retention 30d") || !strings.Contains(string(r.stdout), "would remove 0 snapshots") {
		t.Errorf("dry run:\n%s", r.stdout)
	}
}

func TestConfigMinRetention(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 0)
	key := e.path("admin.pem")

	c := configJSON(t, e)
	if !reflect.DeepEqual(c, jsonConfig{}) {
		t.Errorf("config of a repository without a policy: %+v", c)
	}
	if out := string(e.mustRun("config").stdout); !strings.Contains(out, "minimum retention  none") {
		t.Errorf("config:\n%s", out)
	}
	r := e.expectCode(ExitFatal, "config", "--min-retention", "30d")
	if !strings.Contains(string(r.stderr), "--admin-key-file") {
		t.Errorf("no key: %v", r)
	}
	// A file that holds no key is not overwritten.
	notes := e.path("notes.txt")
	if err := os.WriteFile(notes, []byte("keep me\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.expectCode(ExitFatal, "config", "--min-retention", "30d", "--admin-key-file", notes)
	if b, _ := os.ReadFile(notes); string(b) != "keep me\n" {
		t.Errorf("notes overwritten: %q", b)
	}

	c = configJSON(t, e, "--min-retention", "30d", "--admin-key-file", key)
	if c.MinRetentionSeconds != int64(thirtyDays/time.Second) || c.PolicySeq != 1 {
		t.Fatalf("after setting 30d: %+v", c)
	}
	fingerprint := c.AdminKeyFingerprint

	sns := backups(t, e, 2)
	old := backdate(t, e, sns[0].ID, 60*24*time.Hour)

	// forget --keep-last 1 removes only the old snapshot.
	g := forgetDryRun(t, e, "--keep-last", "1")
	if got := removedIDs(g); !slices.Equal(got, []string{old}) {
		t.Errorf("would remove %q, want only the 60-day-old %s", got, old[:8])
	}
	if got := keptReasons(g)[sns[0].ID]; !slices.Equal(got, []string{"minimum retention 30d"}) {
		t.Errorf("young snapshot kept for %q", got)
	}
	// Named, a young snapshot is refused.
	r = e.expectCode(ExitFatal, "forget", sns[0].ShortID)
	if !strings.Contains(string(r.stderr), "minimum retention 30d") || !strings.Contains(string(r.stderr), sns[0].ShortID) {
		t.Errorf("forget of a young snapshot: %v", r)
	}

	// Lowering without the key, with a missing key file, or with
	// another key fails and changes nothing.
	r = e.expectCode(ExitFatal, "config", "--min-retention", "0")
	if !strings.Contains(string(r.stderr), "needs the admin key") {
		t.Errorf("lowering without a key: %v", r)
	}
	missing := e.path("missing.pem")
	e.expectCode(ExitFatal, "config", "--min-retention", "0", "--admin-key-file", missing)
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("a missing key file was created once the policy existed (%v)", err)
	}
	otherKey, err := policy.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	other := e.path("other.pem")
	if err := policy.WriteKeyFile(other, otherKey); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"0", "1d", "90d"} {
		r = e.expectCode(ExitFatal, "config", "--min-retention", d, "--admin-key-file", other)
		if !strings.Contains(string(r.stderr), "wrong admin key") || !strings.Contains(string(r.stderr), fingerprint) {
			t.Errorf("--min-retention %s with another key: %v", d, r)
		}
	}
	e.expectCode(ExitFatal, "config", "--admin-key-file", other)
	e.mustRun("config", "--admin-key-file", key)
	if c := configJSON(t, e); c.PolicySeq != 1 || c.MinRetentionSeconds != int64(thirtyDays/time.Second) {
		t.Fatalf("a refused change changed the policy: %+v", c)
	}
	if n := len(repoFiles(t, e, "policy")); n != 1 {
		t.Fatalf("%d policy files after refused changes", n)
	}

	// With the key: raise, then lower to nothing.
	c = configJSON(t, e, "--min-retention", "90d", "--admin-key-file", key)
	if c.PolicySeq != 2 || c.MinRetentionSeconds != 90*24*3600 || c.AdminKeyFingerprint != fingerprint {
		t.Errorf("after raising: %+v", c)
	}
	c = configJSON(t, e, "--min-retention", "0", "--admin-key-file", key)
	if c.PolicySeq != 3 || c.MinRetentionSeconds != 0 || c.AdminKeyFingerprint != fingerprint {
		t.Errorf("after lowering: %+v", c)
	}
	g = forgetDryRun(t, e, "--keep-last", "1")
	if len(g.Remove) != 2 {
		t.Errorf("with no minimum forget would remove %q, want 2 snapshots", removedIDs(g))
	}
	e.mustRun("forget", sns[0].ShortID)
}

// TestConfigIgnoresForgedPolicy: a policy file signed with another key
// (a client lowering the minimum without the admin key) is reported and
// has no effect; a fork makes forget refuse.
func TestConfigIgnoresForgedPolicy(t *testing.T) {
	t.Parallel()
	e := newRepo(t, 0)
	key := e.path("admin.pem")
	configJSON(t, e, "--min-retention", "30d", "--admin-key-file", key)
	sns := backups(t, e, 2)

	ctx := context.Background()
	rp := openInProcess(t, e)
	st, err := policy.Load(ctx, rp)
	if err != nil || st.Current == nil {
		t.Fatalf("load policy: %v", err)
	}
	intruder, err := policy.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	forged := &policy.Policy{Seq: 2, Previous: st.Current.File, AdminKey: intruder.Public().(ed25519.PublicKey), Time: time.Now().UTC().Truncate(time.Second)}
	forged.Sign(rp.Config().ID, intruder)
	if err := policy.Save(ctx, rp, forged); err != nil {
		t.Fatal(err)
	}
	rp.Close()

	r := e.mustRun("config", "--json")
	if !strings.Contains(string(r.stderr), "ignoring policy/"+forged.File.String()) || !strings.Contains(string(r.stderr), "not signed by the admin key") {
		t.Errorf("forged policy not reported: %v", r)
	}
	var c jsonConfig
	checkDoc(t, "config", r.stdout, &c)
	if c.PolicySeq != 1 || c.MinRetentionSeconds != int64(thirtyDays/time.Second) || !slices.Equal(c.IgnoredPolicyFiles, []string{forged.File.String()}) {
		t.Errorf("config with a forged policy: %+v", c)
	}
	e.expectCode(ExitFatal, "forget", sns[0].ShortID)

	// The admin signs two successors of policy 1: forget cannot tell the
	// minimum retention and removes nothing.
	adminKey, err := policy.ReadKeyFile(key)
	if err != nil {
		t.Fatal(err)
	}
	rp = openInProcess(t, e)
	for _, d := range []time.Duration{0, time.Hour} {
		p, err := policy.Next(rp.Config().ID, st.Current, d, adminKey, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := policy.Save(ctx, rp, p); err != nil {
			t.Fatal(err)
		}
	}
	rp.Close()
	r = e.expectCode(ExitFatal, "forget", "--keep-last", "1")
	if !strings.Contains(string(r.stderr), "forked") || !strings.Contains(string(r.stderr), "by hand") {
		t.Errorf("forget with a forked policy: %v", r)
	}
	e.expectCode(ExitFatal, "config")
	if n := len(repoFiles(t, e, "snapshots")); n != 2 {
		t.Errorf("%d snapshots left, want 2", n)
	}
}
