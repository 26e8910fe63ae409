package testutil

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// MinIO root credentials of every test server.
const (
	MinIOAccessKey = "rewind-test"
	MinIOSecretKey = "rewind-test-secret"
)

// minioStartTimeout bounds the wait for a starting server to answer.
const minioStartTimeout = 60 * time.Second

// MinIOOptions change how StartMinIO sets up the server.
type MinIOOptions struct {
	// TLS serves https with a certificate for 127.0.0.1 signed by a new
	// CA, whose PEM file is MinIO.CACert.
	TLS bool
}

// MinIO is a MinIO server run by a test, listening on 127.0.0.1 with a
// data folder in the test's temporary directory.
type MinIO struct {
	// Endpoint is the server's address, 127.0.0.1:PORT.
	Endpoint string
	// TLS is true when the server speaks https.
	TLS bool
	// CACert is the PEM file of the CA that signed the server's
	// certificate (TLS only).
	CACert string

	bin, dataDir, certsDir, logFile string

	mu     sync.Mutex
	cmd    *exec.Cmd     // mu
	exited chan struct{} // closed when cmd has exited; mu
}

// StartMinIO starts a MinIO server for the test and stops it when the test
// ends. Without a MinIO binary, or when the server does not start, the
// test is skipped, or failed under CI=true. The binary is $REWIND_MINIO,
// else the one scripts/minio.sh installs
// (${XDG_CACHE_HOME:-~/.cache}/rewind-test/bin/minio), else minio in PATH.
func StartMinIO(t testing.TB) *MinIO { return StartMinIOWith(t, MinIOOptions{}) }

// StartMinIOWith is StartMinIO with options.
func StartMinIOWith(t testing.TB, opt MinIOOptions) *MinIO {
	t.Helper()
	bin, err := minioBinary()
	if err != nil {
		unavailable(t, "MinIO server: %v (run scripts/minio.sh to install it)", err)
	}
	dir := t.TempDir()
	m := &MinIO{
		bin:      bin,
		TLS:      opt.TLS,
		dataDir:  filepath.Join(dir, "data"),
		certsDir: filepath.Join(dir, "certs"),
		logFile:  filepath.Join(dir, "minio.log"),
	}
	if err := os.MkdirAll(m.certsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if opt.TLS {
		m.CACert = filepath.Join(dir, "ca.pem")
		if err := writeCerts(m.certsDir, m.CACert); err != nil {
			t.Fatalf("make TLS certificates for MinIO: %v", err)
		}
	}
	t.Cleanup(func() {
		m.Stop()
		if t.Failed() {
			t.Logf("MinIO log (%s):\n%s", m.Endpoint, m.logTail())
		}
	})
	// The free port may be taken between finding it and MinIO binding it:
	// try a few.
	for try := 0; ; try++ {
		m.Endpoint, err = freePort()
		if err == nil {
			err = m.start()
		}
		if err == nil {
			return m
		}
		if try == 2 {
			unavailable(t, "start MinIO: %v\n%s", err, m.logTail())
		}
	}
}

// minioBinary finds the server's executable.
func minioBinary() (string, error) {
	if p := os.Getenv("REWIND_MINIO"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("REWIND_MINIO: %w", err)
		}
		return p, nil
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		if home, err := os.UserHomeDir(); err == nil {
			cache = filepath.Join(home, ".cache")
		}
	}
	if cache != "" {
		p := filepath.Join(cache, "rewind-test", "bin", "minio")
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p, nil
	}
	return "", errors.New("no minio binary in $REWIND_MINIO, ~/.cache/rewind-test/bin or PATH")
}

// freePort returns 127.0.0.1:PORT for a port that was free a moment ago.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// start runs the server on m.Endpoint and waits until it answers S3
// requests.
func (m *MinIO) start() error {
	logf, err := os.OpenFile(m.logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "=== %s: minio server --address %s\n", time.Now().Format(time.RFC3339Nano), m.Endpoint)
	cmd := exec.Command(m.bin, "server", "--quiet", "--address", m.Endpoint, "--certs-dir", m.certsDir, m.dataDir)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + filepath.Dir(m.dataDir),
		"MINIO_ROOT_USER=" + MinIOAccessKey,
		"MINIO_ROOT_PASSWORD=" + MinIOSecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_CI_CD=1",
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so that a signal to the test's group (^C)
	// does not reach it before the cleanup does.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", m.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	m.mu.Lock()
	m.cmd, m.exited = cmd, exited
	m.mu.Unlock()

	if err := m.waitReady(exited); err != nil {
		m.Kill()
		return err
	}
	return nil
}

// waitReady polls the server until it lists buckets.
func (m *MinIO) waitReady(exited <-chan struct{}) error {
	client, err := m.newClient()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(minioStartTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := client.ListBuckets(ctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("minio exited during start")
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("minio did not answer within %v: %w", minioStartTimeout, err)
		}
	}
}

// Kill stops the server at once with SIGKILL, as a crash would, and
// waits for it to exit. The data folder stays for Restart.
func (m *MinIO) Kill() {
	m.mu.Lock()
	cmd, exited := m.cmd, m.exited
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// Stop stops the server gracefully (SIGTERM, then SIGKILL after 10 s).
func (m *MinIO) Stop() {
	m.mu.Lock()
	cmd, exited := m.cmd, m.exited
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	stopProcess(cmd, exited)
}

// stopProcess stops a test server's process: SIGTERM, then SIGKILL if it
// has not exited (closed exited) within 10 s.
func stopProcess(cmd *exec.Cmd, exited <-chan struct{}) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
	}
}

// Restart starts the server again on the same address and data folder
// after Kill or Stop, and fails the test if it does not come up.
func (m *MinIO) Restart(t testing.TB) {
	t.Helper()
	m.Kill() // in case it still runs
	var err error
	// The port may linger a moment after the old process died.
	for try := 0; try < 20; try++ {
		if err = m.start(); err == nil {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("restart MinIO on %s: %v\n%s", m.Endpoint, err, m.logTail())
}

// Env returns the environment variables that give rewind the server's
// credentials, as NAME=VALUE.
func (m *MinIO) Env() []string {
	env := []string{"AWS_ACCESS_KEY_ID=" + MinIOAccessKey, "AWS_SECRET_ACCESS_KEY=" + MinIOSecretKey}
	if m.CACert != "" {
		env = append(env, "REWIND_CACERT="+m.CACert)
	}
	return env
}

// URL returns the rewind repository address of bucket (and prefix, if
// not empty) on the server.
func (m *MinIO) URL(bucket, prefix string) string {
	scheme := "http"
	if m.TLS {
		scheme = "https"
	}
	u := "s3:" + scheme + "://" + m.Endpoint + "/" + bucket
	if prefix != "" {
		u += "/" + prefix
	}
	return u
}

// Client returns a minio-go client with the root credentials, for tests
// that look at the bucket behind rewind's back.
func (m *MinIO) Client(t testing.TB) *minio.Client {
	t.Helper()
	c, err := m.newClient()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (m *MinIO) newClient() (*minio.Client, error) {
	opts := &minio.Options{
		Creds:      credentials.NewStaticV4(MinIOAccessKey, MinIOSecretKey, ""),
		Secure:     m.TLS,
		Region:     "us-east-1",
		MaxRetries: 1,
	}
	if m.TLS {
		pem, err := os.ReadFile(m.CACert)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		tr, err := minio.DefaultTransport(true)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		opts.Transport = tr
	} else {
		tr, err := minio.DefaultTransport(false)
		if err != nil {
			return nil, err
		}
		// No keep-alive: a killed server leaves no dead connection behind.
		tr.DisableKeepAlives = true
		opts.Transport = tr
	}
	return minio.New(m.Endpoint, opts)
}

var bucketSeq atomic.Int64

// NewBucket creates a bucket with a name no other call returns, and
// returns the name.
func (m *MinIO) NewBucket(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("rewind-test-%d-%d", os.Getpid(), bucketSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Client(t).MakeBucket(ctx, name, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	return name
}

// logTail returns the last lines of the server's output.
func (m *MinIO) logTail() string {
	b, err := os.ReadFile(m.logFile)
	if err != nil {
		return "(no MinIO log: " + err.Error() + ")"
	}
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// writeCerts writes a new CA and a server certificate for 127.0.0.1 that
// it signed into certsDir as MinIO wants them (public.crt, private.key),
// and the CA's certificate to caFile.
func writeCerts(certsDir, caFile string) error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "rewind test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	srv := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srv, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(srvKey)
	if err != nil {
		return err
	}
	files := map[string]*pem.Block{
		caFile:                                 {Type: "CERTIFICATE", Bytes: caDER},
		filepath.Join(certsDir, "public.crt"):  {Type: "CERTIFICATE", Bytes: srvDER},
		filepath.Join(certsDir, "private.key"): {Type: "PRIVATE KEY", Bytes: keyDER},
	}
	for name, block := range files {
		if err := os.WriteFile(name, pem.EncodeToMemory(block), 0o600); err != nil {
			return err
		}
	}
	return nil
}
