package location

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/local"
	"github.com/rewind-backup/rewind/internal/testutil"
)

func TestParseGood(t *testing.T) {
	tests := []struct {
		addr   string
		want   Location
		String string // "" when equal to addr
	}{
		{"/srv/backup", Location{Scheme: Local, Path: "/srv/backup"}, "local:/srv/backup"},
		{"/srv/backup/", Location{Scheme: Local, Path: "/srv/backup"}, "local:/srv/backup"},
		{"relative/repo", Location{Scheme: Local, Path: "relative/repo"}, "local:relative/repo"},
		{"./ftp:x", Location{Scheme: Local, Path: "ftp:x"}, "local:ftp:x"},
		{"/mnt/a:b", Location{Scheme: Local, Path: "/mnt/a:b"}, "local:/mnt/a:b"},
		{"repo", Location{Scheme: Local, Path: "repo"}, "local:repo"},
		{":x", Location{Scheme: Local, Path: ":x"}, "local::x"},
		{"local:/srv/backup", Location{Scheme: Local, Path: "/srv/backup"}, ""},
		{"local:repo", Location{Scheme: Local, Path: "repo"}, ""},
		{"local:ftp:x", Location{Scheme: Local, Path: "ftp:x"}, ""},
		{"LOCAL:/x", Location{Scheme: Local, Path: "/x"}, "local:/x"},

		{"s3:https://s3.example.com/bucket",
			Location{Scheme: S3, Endpoint: "s3.example.com", TLS: true, Bucket: "bucket"}, ""},
		{"s3:http://minio:9000/my-bucket/some/prefix",
			Location{Scheme: S3, Endpoint: "minio:9000", Bucket: "my-bucket", Prefix: "some/prefix"}, ""},
		{"s3:https://127.0.0.1:9000/b.u.c/p/",
			Location{Scheme: S3, Endpoint: "127.0.0.1:9000", TLS: true, Bucket: "b.u.c", Prefix: "p"},
			"s3:https://127.0.0.1:9000/b.u.c/p"},
		{"s3:http://[::1]:9000/bucket",
			Location{Scheme: S3, Endpoint: "[::1]:9000", Bucket: "bucket"}, ""},

		{"rest:http://localhost:8000/",
			Location{Scheme: REST, Endpoint: "localhost:8000", URL: "http://localhost:8000"},
			"rest:http://localhost:8000"},
		{"rest:https://backup.example.com/repos/host1",
			Location{Scheme: REST, Endpoint: "backup.example.com", TLS: true, URL: "https://backup.example.com/repos/host1"}, ""},
		{"rest:https://user:secret@host:8443/repo",
			Location{Scheme: REST, Endpoint: "host:8443", TLS: true, URL: "https://user:secret@host:8443/repo"},
			"rest:https://user:xxxxx@host:8443/repo"},
	}
	for _, tc := range tests {
		got, err := Parse(tc.addr)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.addr, err)
			continue
		}
		if got != tc.want {
			t.Errorf("Parse(%q) = %+v, want %+v", tc.addr, got, tc.want)
		}
		wantString := tc.String
		if wantString == "" {
			wantString = tc.addr
		}
		if got.String() != wantString {
			t.Errorf("Parse(%q).String() = %q, want %q", tc.addr, got.String(), wantString)
		}
		if strings.Contains(got.String(), "secret") {
			t.Errorf("Parse(%q).String() shows the password", tc.addr)
		}
		// What String prints parses to the same place, passwords aside.
		if again, err := Parse(got.String()); err != nil || (again != got && got.Scheme != REST) {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", got.String(), again, err, got)
		}
	}
}

func TestParseBad(t *testing.T) {
	tests := []struct {
		addr string
		want string // in the error message
	}{
		{"", "empty"},
		{"local:", "empty path"},
		{"ftp:x", `unknown repository scheme "ftp"`},
		{"ftp://host/x", `unknown repository scheme "ftp"`},
		{"sftp:user@host:/srv", `unknown repository scheme "sftp"`},
		{"backup:2024", `"./"`},
		{"sftp:user:secret@host:/srv", "unknown repository scheme"},
		{"rest:https://user:secret@host:70000/", "invalid port"},
		{"rest:https://user:secret@host:abc/", "invalid port"},
		{"rest:https://user:secret@/", "no host"},
		{"s3:", "http:// or https://"},
		{"s3:host/bucket", "http:// or https://"},
		{"s3:ftp://host/bucket", "http:// or https://"},
		{"s3:https://", "no host"},
		{"s3:https:///bucket", "no host"},
		{"s3:https://host", "no bucket"},
		{"s3:https://host/", "no bucket"},
		{"s3:https://host:99999/bucket", "invalid port"},
		{"s3:https://host:0/bucket", "invalid port"},
		{"s3:https://host:abc/bucket", "invalid port"},
		{"s3:https://host/Bucket", "invalid bucket name"},
		{"s3:https://host/ab", "invalid bucket name"},
		{"s3:https://host/-bucket", "invalid bucket name"},
		{"s3:https://host/bucket-", "invalid bucket name"},
		{"s3:https://host/bu_cket", "invalid bucket name"},
		{"s3:https://host/bu..cket", "invalid bucket name"},
		{"s3:https://host/" + strings.Repeat("b", 64), "invalid bucket name"},
		{"s3:https://host/bucket/a//b", "invalid prefix"},
		{"s3:https://host/bucket/../x", "invalid prefix"},
		{"s3:https://key:secret@host/bucket", "credentials"},
		{"s3:https://host/bucket?x=1", "query"},
		{"s3:https://host/bucket#frag", "fragment"},
		{"rest:", "http:// or https://"},
		{"rest:host:8000", "http:// or https://"},
		{"rest:http://", "no host"},
		{"rest:http://host:70000/", "invalid port"},
		{"rest:http://host/?q", "query"},
		{"local:/x\x00y", "NUL"},
	}
	for _, tc := range tests {
		loc, err := Parse(tc.addr)
		if err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", tc.addr, loc)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q): error %q does not say %q", tc.addr, err, tc.want)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("Parse(%q): error shows the password", tc.addr)
		}
	}
	if _, err := Parse("ftp:x"); !errors.Is(err, ErrUnknownScheme) {
		t.Errorf("Parse(ftp:x): error %v does not match ErrUnknownScheme", err)
	}
}

func TestOpenCreateLocal(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "repo")
	loc, err := Parse("local:" + dir)
	if err != nil {
		t.Fatal(err)
	}
	be, err := Open(ctx, loc, Options{})
	if !errors.Is(err, local.ErrNoRepository) || !IsNoRepository(err) {
		t.Fatalf("Open before Create: got %v, want ErrNoRepository", err)
	}
	if be != nil {
		t.Fatalf("Open returned a backend %#v with its error", be)
	}

	be, err = Create(ctx, loc, Options{})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if be.Location() != dir {
		t.Errorf("Location() = %q, want %q", be.Location(), dir)
	}
	cfg := backend.Handle{Type: backend.ConfigFile}
	if err := be.Save(ctx, cfg, backend.NewByteReader([]byte("config"))); err != nil {
		t.Fatal(err)
	}
	_ = be.Close()

	be, err = Open(ctx, loc, Options{})
	if err != nil {
		t.Fatalf("Open after Create: %v", err)
	}
	_ = be.Close()
	if _, err := Create(ctx, loc, Options{}); !errors.Is(err, backend.ErrExists) {
		t.Fatalf("Create over a repository: got %v, want ErrExists", err)
	}
}

func TestOpenUnsupported(t *testing.T) {
	ctx := context.Background()
	for _, addr := range []string{"rest:https://user:secret@host/"} {
		loc, err := Parse(addr)
		if err != nil {
			t.Fatal(err)
		}
		for op, fn := range map[string]func(context.Context, Location, Options) (backend.Backend, error){"Open": Open, "Create": Create} {
			be, err := fn(ctx, loc, Options{})
			if be != nil || !errors.Is(err, errors.ErrUnsupported) || !backend.IsPermanent(err) {
				t.Errorf("%s(%s) = %v, %v; want a permanent ErrUnsupported", op, addr, be, err)
			}
			if err != nil && (!strings.Contains(err.Error(), "recognised but not supported") || strings.Contains(err.Error(), "secret")) {
				t.Errorf("%s(%s): unclear error %q", op, addr, err)
			}
		}
	}
	if _, err := Open(ctx, Location{Scheme: "ftp"}, Options{}); !errors.Is(err, ErrUnknownScheme) {
		t.Errorf("Open of an unknown scheme: got %v", err)
	}
}

// TestOpenCreateS3 opens and creates repositories on a real MinIO server,
// with the credentials taken from the AWS environment variables.
func TestOpenCreateS3(t *testing.T) {
	m := testutil.StartMinIO(t)
	for _, kv := range m.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	ctx := context.Background()
	bucket := m.NewBucket(t)
	loc, err := Parse(m.URL(bucket, "team/host1"))
	if err != nil {
		t.Fatal(err)
	}
	if loc.Scheme != S3 || loc.Bucket != bucket || loc.Prefix != "team/host1" || !loc.IsRemote() {
		t.Fatalf("Parse = %+v", loc)
	}
	opts := Options{S3Region: "us-east-1", S3BucketLookup: "path"}
	if _, err := Open(ctx, loc, opts); !IsNoRepository(err) {
		t.Fatalf("Open of an empty bucket: got %v, want no repository", err)
	}
	be, err := Create(ctx, loc, opts)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if be.Location() != loc.String() {
		t.Errorf("Location() = %q, want %q", be.Location(), loc.String())
	}
	if err := be.Save(ctx, backend.Handle{Type: backend.ConfigFile}, backend.NewByteReader([]byte("config"))); err != nil {
		t.Fatal(err)
	}
	_ = be.Close()
	be, err = Open(ctx, loc, opts)
	if err != nil {
		t.Fatalf("Open after Create: %v", err)
	}
	_ = be.Close()
	if _, err := Create(ctx, loc, opts); !errors.Is(err, backend.ErrExists) {
		t.Fatalf("Create over a repository: got %v, want ErrExists", err)
	}

	// A missing bucket is no repository for Open, and Create makes it.
	missing, _ := Parse(m.URL("rewind-missing-bucket", ""))
	if _, err := Open(ctx, missing, opts); !IsNoRepository(err) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Open of a missing bucket: got %v", err)
	}
	be, err = Create(ctx, missing, opts)
	if err != nil {
		t.Fatalf("Create in a missing bucket: %v", err)
	}
	_ = be.Close()
	if _, err := Open(ctx, loc, Options{S3BucketLookup: "sideways"}); err == nil || !backend.IsPermanent(err) {
		t.Fatalf("Open with a bad bucket lookup: got %v", err)
	}
}
