package policy_test

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/policy"
)

// vector is a fixed policy 2, used as the test vector of
// docs/draft-holds-policy.md.
func vector(t *testing.T) (repo id.ID, p *policy.Policy) {
	t.Helper()
	var err error
	repo, err = id.Parse("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")
	if err != nil {
		t.Fatal(err)
	}
	prev, err := id.Parse("5f8833ec681c8c9278a14c76c54834587d89592c44d9a32afe27bf060dc6c336")
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := hex.DecodeString("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
	key := ed25519.NewKeyFromSeed(seed)
	p = &policy.Policy{Seq: 2, Previous: prev, MinRetention: 30 * day, AdminKey: pub(key), Time: time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)}
	p.Sign(repo, key)
	return repo, p
}

// TestSignedBytes pins the exact bytes that are signed: another
// implementation must produce the same.
func TestSignedBytes(t *testing.T) {
	repo, p := vector(t)
	want := "rewind policy v1\n" +
		"repository 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n" +
		"seq 2\n" +
		"previous 5f8833ec681c8c9278a14c76c54834587d89592c44d9a32afe27bf060dc6c336\n" +
		"min_retention 2592000\n" +
		"admin_public_key d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a\n" +
		"time 1772330400\n"
	if got := string(p.SignedBytes(repo)); got != want {
		t.Errorf("signed bytes:\n%s\nwant:\n%s", got, want)
	}
	p.Seq, p.Previous = 1, id.ID{}
	if got := string(p.SignedBytes(repo)); !strings.Contains(got, "\nseq 1\nprevious none\n") {
		t.Errorf("policy 1 signed bytes:\n%s", got)
	}
}

// TestEncodeGolden: the stored JSON of the test vector, kept in testdata
// (regenerate with REWIND_UPDATE_GOLDEN=1), decodes to the same policy.
func TestEncodeGolden(t *testing.T) {
	repo, p := vector(t)
	enc, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "policy-v1.golden.json")
	if os.Getenv("REWIND_UPDATE_GOLDEN") != "" {
		if err := os.WriteFile(golden, append(enc, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(want)) != string(enc) {
		t.Errorf("encoding changed:\n%s\nwant:\n%s", enc, want)
	}
	q, err := policy.Decode(want)
	if err != nil {
		t.Fatal(err)
	}
	if q.Seq != 2 || q.Previous != p.Previous || q.MinRetention != 30*day || !q.AdminKey.Equal(p.AdminKey) || !q.Time.Equal(p.Time) {
		t.Errorf("decoded %+v, want %+v", q, p)
	}
	if !q.VerifiedBy(repo, p.AdminKey) {
		t.Error("the golden policy's signature does not verify")
	}
}

func TestDecodeRefuses(t *testing.T) {
	_, p := vector(t)
	enc, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	good := string(enc)
	if _, err := policy.Decode(enc); err != nil {
		t.Fatalf("valid policy refused: %v", err)
	}
	field := func(name string) string {
		i := strings.Index(good, `"`+name+`":`)
		j := i + strings.IndexAny(good[i:], ",}")
		return good[i:j]
	}
	cases := map[string]string{
		"unknown field":        strings.Replace(good, `{`, `{"lock":true,`, 1),
		"no min_retention":     strings.Replace(good, field("min_retention")+",", "", 1),
		"negative retention":   strings.Replace(good, field("min_retention"), `"min_retention":-1`, 1),
		"retention as string":  strings.Replace(good, field("min_retention"), `"min_retention":"2592000"`, 1),
		"huge retention":       strings.Replace(good, field("min_retention"), `"min_retention":9999999999999`, 1),
		"seq 0":                strings.Replace(good, field("seq"), `"seq":0`, 1),
		"seq 2 without link":   strings.Replace(good, field("previous")+",", "", 1),
		"upper-case previous":  strings.Replace(good, "5f8833ec", "5F8833EC", 1),
		"short key":            strings.Replace(good, field("admin_public_key"), `"admin_public_key":"AAAA"`, 1),
		"unpadded signature":   strings.Replace(good, `=="}`, `"}`, 1),
		"local time":           strings.Replace(good, "2026-03-01T02:00:00Z", "2026-03-01T03:00:00+01:00", 1),
		"fractional time":      strings.Replace(good, "2026-03-01T02:00:00Z", "2026-03-01T02:00:00.5Z", 1),
		"trailing data":        good + `{}`,
		"not an object":        `[]`,
		"null":                 `null`,
		"seq 1 with a link":    strings.Replace(good, field("seq"), `"seq":1`, 1),
		"negative seq":         strings.Replace(good, field("seq"), `"seq":-2`, 1),
		"seq beyond 2^53 - 1":  strings.Replace(good, field("seq"), `"seq":9007199254740992`, 1),
		"time before 1970":     strings.Replace(good, "2026-03-01T02:00:00Z", "1969-12-31T23:59:59Z", 1),
		"signature not base64": strings.Replace(good, field("signature"), `"signature":"!!"`, 1),
	}
	for name, in := range cases {
		if in == good {
			t.Errorf("%s: the case changes nothing", name)
			continue
		}
		if _, err := policy.Decode([]byte(in)); !errors.Is(err, policy.ErrInvalid) {
			t.Errorf("%s: Decode(%s) = %v, want ErrInvalid", name, in, err)
		}
	}
}
