package testutil

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
)

// TestMinIO starts a server, stores an object, kills the server and
// starts it again: the object is still there.
func TestMinIO(t *testing.T) {
	m := StartMinIO(t)
	ctx := context.Background()
	bucket := m.NewBucket(t)
	if other := m.NewBucket(t); other == bucket {
		t.Fatalf("NewBucket returned %s twice", bucket)
	}
	put := func(key string) {
		t.Helper()
		if _, err := m.Client(t).PutObject(ctx, bucket, key, strings.NewReader(key), int64(len(key)), minio.PutObjectOptions{}); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}
	get := func(key string) string {
		t.Helper()
		obj, err := m.Client(t).GetObject(ctx, bucket, key, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer obj.Close()
		b, err := io.ReadAll(obj)
		if err != nil {
			t.Fatalf("get %s: %v", key, err)
		}
		return string(b)
	}
	put("before")
	endpoint := m.Endpoint

	m.Kill()
	if _, err := m.Client(t).ListBuckets(ctx); err == nil {
		t.Fatal("the killed server still answers")
	}
	m.Restart(t)
	if m.Endpoint != endpoint {
		t.Fatalf("restarted on %s, want %s", m.Endpoint, endpoint)
	}
	if got := get("before"); got != "before" {
		t.Fatalf("after a restart the object holds %q", got)
	}
	put("after")
	if got := get("after"); got != "after" {
		t.Fatalf("got %q", got)
	}
	env := strings.Join(m.Env(), " ")
	if !strings.Contains(env, "AWS_ACCESS_KEY_ID="+MinIOAccessKey) || !strings.Contains(env, "AWS_SECRET_ACCESS_KEY="+MinIOSecretKey) {
		t.Errorf("Env() = %v", m.Env())
	}
	if u := m.URL("b", "p/q"); u != "s3:http://"+endpoint+"/b/p/q" {
		t.Errorf("URL = %s", u)
	}
}

// TestMinIOTLS starts a server that speaks https with a certificate the
// returned CA signed.
func TestMinIOTLS(t *testing.T) {
	m := StartMinIOWith(t, MinIOOptions{TLS: true})
	if m.CACert == "" || !strings.HasPrefix(m.URL("b", ""), "s3:https://") {
		t.Fatalf("CACert %q, URL %s", m.CACert, m.URL("b", ""))
	}
	if !strings.Contains(strings.Join(m.Env(), " "), "REWIND_CACERT="+m.CACert) {
		t.Errorf("Env() = %v", m.Env())
	}
	m.NewBucket(t) // over https, trusting the CA
}
