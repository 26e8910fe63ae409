package s3_test

// These tests run against a real MinIO server started by testutil: they
// are skipped without one, and fail under CI=true.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/s3"
	"github.com/rewind-backup/rewind/internal/backend/test"
	"github.com/rewind-backup/rewind/internal/testutil"
)

// config returns the backend configuration for bucket and prefix on m.
func config(m *testutil.MinIO, bucket, prefix string) s3.Config {
	return s3.Config{
		Endpoint:   m.Endpoint,
		TLS:        m.TLS,
		Bucket:     bucket,
		Prefix:     prefix,
		Region:     "us-east-1",
		CACertFile: m.CACert,
		Creds:      credentials.NewStaticV4(testutil.MinIOAccessKey, testutil.MinIOSecretKey, ""),
	}
}

func create(t testing.TB, cfg s3.Config) *s3.Backend {
	t.Helper()
	be, err := s3.Create(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Create(%s/%s): %v", cfg.Bucket, cfg.Prefix, err)
	}
	return be
}

// TestBackend runs the conformance suite: each subtest gets a repository
// of its own, under a prefix of one shared bucket (so that List must keep
// to its prefix) or, for every other one, at the root of a bucket of its
// own.
func TestBackend(t *testing.T) {
	m := testutil.StartMinIO(t)
	shared := m.NewBucket(t)
	var n atomic.Int64
	test.RunTests(t, func(t *testing.T) backend.Backend {
		i := n.Add(1)
		if i%2 == 0 {
			return create(t, config(m, m.NewBucket(t), ""))
		}
		return create(t, config(m, shared, fmt.Sprintf("repo-%d/sub", i)))
	})
}

func BenchmarkBackend(b *testing.B) {
	m := testutil.StartMinIO(b)
	test.RunBenchmarks(b, func(b *testing.B) backend.Backend { return create(b, config(m, m.NewBucket(b), "")) })
}

func hexName(rng *rand.Rand) string {
	return fmt.Sprintf("%016x%016x%016x%016x", rng.Uint64(), rng.Uint64(), rng.Uint64(), rng.Uint64())
}

func randomData(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func loadAll(t *testing.T, be backend.Backend, h backend.Handle) []byte {
	t.Helper()
	var got []byte
	err := be.Load(context.Background(), h, 0, 0, func(rd io.Reader) (err error) {
		got, err = io.ReadAll(rd)
		return err
	})
	if err != nil {
		t.Fatalf("Load(%v): %v", h, err)
	}
	return got
}

// streamReader is a RewindReader without ReadAt, so that multipart
// uploads take their one-part-after-the-other path.
type streamReader struct{ r *bytes.Reader }

func (s *streamReader) Read(p []byte) (int, error) { return s.r.Read(p) }
func (s *streamReader) Length() int64              { return s.r.Size() }
func (s *streamReader) Rewind() error              { _, err := s.r.Seek(0, io.SeekStart); return err }

// objects lists every key in bucket with its size.
func objects(t *testing.T, m *testutil.MinIO, bucket string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for obj := range m.Client(t).ListObjectsIter(context.Background(), bucket, minio.ListObjectsOptions{Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		out[obj.Key] = obj.Size
	}
	return out
}

// incompleteUploads counts the multipart uploads in bucket that were
// neither completed nor aborted.
func incompleteUploads(t *testing.T, m *testutil.MinIO, bucket string) int {
	t.Helper()
	core := minio.Core{Client: m.Client(t)}
	res, err := core.ListMultipartUploads(context.Background(), bucket, "", "", "", "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	return len(res.Uploads)
}

// TestMultipart saves objects larger than the multipart threshold through
// both upload paths, saves them again with equal and different content,
// and races writers of different content on one name.
func TestMultipart(t *testing.T) {
	m := testutil.StartMinIO(t)
	bucket := m.NewBucket(t)
	cfg := config(m, bucket, "mp")
	cfg.PartSize = 5 << 20
	cfg.MultipartThreshold = 6 << 20
	be := create(t, cfg)
	defer be.Close()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))

	const size = 11<<20 + 12345 // three parts, the last one short
	for _, parallel := range []bool{true, false} {
		t.Run(fmt.Sprintf("parallel=%v", parallel), func(t *testing.T) {
			data := randomData(rng, size)
			reader := func(d []byte) backend.RewindReader {
				if parallel {
					return backend.NewByteReader(d)
				}
				return &streamReader{r: bytes.NewReader(d)}
			}
			h := backend.Handle{Type: backend.PackFile, Name: hexName(rng)}
			if err := be.Save(ctx, h, reader(data)); err != nil {
				t.Fatalf("Save of %d bytes: %v", size, err)
			}
			if got := loadAll(t, be, h); !bytes.Equal(got, data) {
				t.Fatalf("Load: %d bytes, content differs", len(got))
			}
			if err := be.Save(ctx, h, reader(bytes.Clone(data))); err != nil {
				t.Fatalf("Save again with the same content: %v", err)
			}
			changed := bytes.Clone(data)
			changed[size-1] ^= 1
			if err := be.Save(ctx, h, reader(changed)); !errors.Is(err, backend.ErrExists) {
				t.Fatalf("Save with other content: got %v, want ErrExists", err)
			}
			if got := loadAll(t, be, h); !bytes.Equal(got, data) {
				t.Fatal("the stored object changed")
			}
			// A reader that lies about its length stores nothing.
			bad := backend.Handle{Type: backend.PackFile, Name: hexName(rng)}
			short := &lyingReader{streamReader: streamReader{r: bytes.NewReader(data)}, length: size + 1}
			if err := be.Save(ctx, bad, short); err == nil {
				t.Fatal("Save with a reader shorter than its length succeeded")
			}
			long := &lyingReader{streamReader: streamReader{r: bytes.NewReader(data)}, length: size - 1}
			if err := be.Save(ctx, bad, long); err == nil {
				t.Fatal("Save with a reader longer than its length succeeded")
			}
			if _, err := be.Stat(ctx, bad); !backend.IsNotExist(err) {
				t.Fatalf("Stat after failed Saves: got %v, want ErrNotExist", err)
			}
		})
	}

	t.Run("conflict", func(t *testing.T) {
		const writers = 4
		h := backend.Handle{Type: backend.PackFile, Name: hexName(rng)}
		contents := make([][]byte, writers)
		for i := range contents {
			contents[i] = randomData(rng, size)
		}
		errs := make([]error, writers)
		var wg sync.WaitGroup
		for i := range writers {
			wg.Go(func() { errs[i] = be.Save(ctx, h, backend.NewByteReader(contents[i])) })
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("writers %d and %d both succeeded", winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, backend.ErrExists):
				t.Fatalf("writer %d: got %v, want ErrExists", i, err)
			}
		}
		if winner < 0 {
			t.Fatal("no writer succeeded")
		}
		if got := loadAll(t, be, h); !bytes.Equal(got, contents[winner]) {
			t.Fatal("the stored object is not the winner's")
		}
	})

	if n := incompleteUploads(t, m, bucket); n != 0 {
		t.Errorf("%d multipart uploads left behind", n)
	}
}

// lyingReader claims a length other than what it yields.
type lyingReader struct {
	streamReader
	length int64
}

func (l *lyingReader) Length() int64 { return l.length }

// TestUnconditionalWrites checks the fallback for servers without
// conditional writes: sequential Saves keep the contract.
func TestUnconditionalWrites(t *testing.T) {
	m := testutil.StartMinIO(t)
	cfg := config(m, m.NewBucket(t), "")
	cfg.NoConditionalWrites = true
	be := create(t, cfg)
	defer be.Close()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	h := backend.Handle{Type: backend.SnapshotFile, Name: hexName(rng)}
	data := randomData(rng, 1000)
	for range 2 {
		if err := be.Save(ctx, h, backend.NewByteReader(data)); err != nil {
			t.Fatalf("Save: %v", err)
		}
	}
	if err := be.Save(ctx, h, backend.NewByteReader(data[:999])); !errors.Is(err, backend.ErrExists) || !backend.IsPermanent(err) {
		t.Fatalf("Save with other content: got %v, want a permanent ErrExists", err)
	}
	if got := loadAll(t, be, h); !bytes.Equal(got, data) {
		t.Fatal("the stored object changed")
	}
}

// TestLayout checks the keys every file type is stored under.
func TestLayout(t *testing.T) {
	m := testutil.StartMinIO(t)
	bucket := m.NewBucket(t)
	be := create(t, config(m, bucket, "a/b"))
	defer be.Close()
	name := strings.Repeat("c3", 32)
	want := map[string]int64{}
	for _, typ := range backend.AllTypes {
		h := backend.Handle{Type: typ, Name: name}
		key := "a/b/" + typ.String() + "/" + name
		switch typ {
		case backend.ConfigFile:
			h.Name, key = "", "a/b/config"
		case backend.PackFile:
			key = "a/b/data/c3/" + name
		}
		if err := be.Save(context.Background(), h, backend.NewByteReader([]byte(key))); err != nil {
			t.Fatal(err)
		}
		want[key] = int64(len(key))
	}
	got := objects(t, m, bucket)
	var keys []string
	for k := range got {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(got) != len(want) {
		t.Errorf("bucket holds %v, want %d keys", keys, len(want))
	}
	for k, size := range want {
		if got[k] != size {
			t.Errorf("key %s: size %d, want %d (bucket: %v)", k, got[k], size, keys)
		}
	}

	// Stray keys are not files.
	client := m.Client(t)
	for _, k := range []string{"a/b/data/zz/" + name, "a/b/data/" + name, "a/b/data/ab/" + name, "a/b/index/README", "a/b/index/x/" + name} {
		if _, err := client.PutObject(context.Background(), bucket, k, strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, typ := range []backend.FileType{backend.PackFile, backend.IndexFile} {
		var names []string
		err := be.List(context.Background(), typ, func(fi backend.FileInfo) error {
			names = append(names, fi.Name)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(names) != 1 || names[0] != name {
			t.Errorf("List(%v) = %v, want only %s", typ, names, name)
		}
	}
}

// TestOpenCreate checks what Open and Create do with missing buckets,
// empty buckets and existing repositories.
func TestOpenCreate(t *testing.T) {
	m := testutil.StartMinIO(t)
	ctx := context.Background()
	cfg := config(m, "rewind-not-yet", "repo")

	_, err := s3.Open(ctx, cfg)
	if !errors.Is(err, s3.ErrNoRepository) || !strings.Contains(err.Error(), "bucket rewind-not-yet does not exist") {
		t.Fatalf("Open of a missing bucket: got %v", err)
	}
	be := create(t, cfg) // makes the bucket
	if ok, err := m.Client(t).BucketExists(ctx, "rewind-not-yet"); err != nil || !ok {
		t.Fatalf("Create did not make the bucket: %v, %v", ok, err)
	}
	if _, err := s3.Open(ctx, cfg); !errors.Is(err, s3.ErrNoRepository) {
		t.Fatalf("Open before the config is saved: got %v", err)
	}
	if err := be.Save(ctx, backend.Handle{Type: backend.ConfigFile}, backend.NewByteReader([]byte("config"))); err != nil {
		t.Fatal(err)
	}
	be.Close()
	be, err = s3.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if got := loadAll(t, be, backend.Handle{Type: backend.ConfigFile}); string(got) != "config" {
		t.Fatalf("config = %q", got)
	}
	be.Close()
	if _, err := s3.Create(ctx, cfg); !errors.Is(err, backend.ErrExists) {
		t.Fatalf("Create over a repository: got %v, want ErrExists", err)
	}
	// Another prefix of the same bucket is another repository.
	other := cfg
	other.Prefix = "repo2"
	if _, err := s3.Open(ctx, other); !errors.Is(err, s3.ErrNoRepository) {
		t.Fatalf("Open of another prefix: got %v", err)
	}
	create(t, other).Close()
}

// TestCredentials checks that wrong credentials give a permanent error
// that names the problem, and that the AWS environment variables are
// read.
func TestCredentials(t *testing.T) {
	m := testutil.StartMinIO(t)
	bucket := m.NewBucket(t)
	ctx := context.Background()

	cfg := config(m, bucket, "")
	cfg.Creds = credentials.NewStaticV4(testutil.MinIOAccessKey, "wrong-secret", "")
	_, err := s3.Create(ctx, cfg)
	if err == nil || !backend.IsPermanent(err) || !strings.Contains(err.Error(), "SignatureDoesNotMatch") {
		t.Fatalf("Create with a wrong secret: got %v, want a permanent SignatureDoesNotMatch", err)
	}

	t.Setenv("AWS_ACCESS_KEY_ID", testutil.MinIOAccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", testutil.MinIOSecretKey)
	cfg.Creds = nil // from the environment
	create(t, cfg).Close()

	// A shared credentials file with a profile.
	file := t.TempDir() + "/credentials"
	ini := fmt.Sprintf("[default]\naws_access_key_id = nobody\naws_secret_access_key = nothing\n\n[minio]\naws_access_key_id = %s\naws_secret_access_key = %s\n",
		testutil.MinIOAccessKey, testutil.MinIOSecretKey)
	if err := os.WriteFile(file, []byte(ini), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", file)
	t.Setenv("AWS_PROFILE", "minio")
	cfg.Prefix = "profile"
	create(t, cfg).Close()
	t.Setenv("AWS_PROFILE", "default")
	cfg.Prefix = "default-profile"
	if _, err := s3.Create(ctx, cfg); err == nil || !backend.IsPermanent(err) {
		t.Fatalf("Create with the wrong profile: got %v, want a permanent error", err)
	}
}

// TestTLS talks https to a server whose certificate a CA of the test
// signed: without that CA the error is permanent and says what to do.
func TestTLS(t *testing.T) {
	m := testutil.StartMinIOWith(t, testutil.MinIOOptions{TLS: true})
	bucket := m.NewBucket(t)
	ctx := context.Background()
	cfg := config(m, bucket, "")
	be := create(t, cfg)
	rng := rand.New(rand.NewPCG(5, 6))
	h := backend.Handle{Type: backend.IndexFile, Name: hexName(rng)}
	data := randomData(rng, 5000)
	if err := be.Save(ctx, h, backend.NewByteReader(data)); err != nil {
		t.Fatal(err)
	}
	if got := loadAll(t, be, h); !bytes.Equal(got, data) {
		t.Fatal("content differs")
	}
	be.Close()

	cfg.CACertFile = ""
	_, err := s3.Create(ctx, cfg)
	if err == nil || !backend.IsPermanent(err) || !strings.Contains(err.Error(), "REWIND_CACERT") {
		t.Fatalf("Create without the CA: got %v, want a permanent certificate error", err)
	}
	cfg.TLS = false
	cfg.CACertFile = m.CACert
	if _, err := s3.New(cfg); err == nil {
		t.Fatal("New with a CA for plain http succeeded")
	}
}

// TestBucketLookup checks that path style can be forced and that an
// unknown style is refused. (Virtual-host style needs DNS names for the
// bucket, which a server on 127.0.0.1 does not have.)
func TestBucketLookup(t *testing.T) {
	m := testutil.StartMinIO(t)
	bucket := m.NewBucket(t)
	cfg := config(m, bucket, "")
	cfg.BucketLookup = s3.LookupPath
	create(t, cfg).Close()

	cfg.BucketLookup = "sideways"
	if _, err := s3.New(cfg); err == nil {
		t.Fatal("New with an unknown bucket lookup succeeded")
	}
}
