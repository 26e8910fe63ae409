package qemu

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rewind-backup/rewind/internal/testutil"
)

// startDisk starts a QEMU with no machine and one qcow2 node "disk".
func startDisk(t *testing.T) (*testutil.QEMU, string) {
	t.Helper()
	testutil.RequireQEMU(t)
	ctx := context.Background()
	img := filepath.Join(t.TempDir(), "disk.qcow2")
	if err := Create(ctx, img, FormatQcow2, 8<<20); err != nil {
		t.Fatal(err)
	}
	q := testutil.StartQEMU(t, testutil.QEMUOptions{Args: []string{"-machine", "none",
		"-blockdev", "driver=qcow2,node-name=disk,file.driver=file,file.filename=" + img}})
	return q, img
}

func TestQMPCommandsEventsAndErrors(t *testing.T) {
	q, img := startDisk(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := Dial(ctx, q.QMPSocket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Version.Major < 2 {
		t.Fatalf("greeting gave version %s", c.Version)
	}
	var nodes []struct {
		NodeName string `json:"node-name"`
		Drv      string `json:"drv"`
	}
	if err := c.Execute(ctx, "query-named-block-nodes", map[string]bool{"flat": true}, &nodes); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, n := range nodes {
		found = found || (n.NodeName == "disk" && n.Drv == "qcow2")
	}
	if !found {
		t.Fatalf("node disk not among %+v", nodes)
	}

	// A refused command is an *Error naming the command.
	err = c.Execute(ctx, "block-dirty-bitmap-add", map[string]any{"node": "nosuchnode", "name": "b"}, nil)
	var qe *Error
	if !errors.As(err, &qe) || qe.Command != "block-dirty-bitmap-add" || qe.Desc == "" {
		t.Fatalf("refused command gave %v", err)
	}

	// A write through QEMU's block layer, seen by a dirty bitmap.
	if err := c.Execute(ctx, "block-dirty-bitmap-add", map[string]any{"node": "disk", "name": "b0", "persistent": true}, nil); err != nil {
		t.Fatal(err)
	}
	// (qemu-io prints on QEMU's standard output, not in the reply.)
	if out, err := c.HumanMonitor(ctx, `qemu-io disk "write -P 0x5a 1M 64k"`); err != nil {
		t.Fatalf("qemu-io: %q %v", out, err)
	}
	var dirty []struct {
		NodeName string `json:"node-name"`
		Bitmaps  []struct {
			Name  string `json:"name"`
			Count int64  `json:"count"`
		} `json:"dirty-bitmaps"`
	}
	if err := c.Execute(ctx, "query-named-block-nodes", map[string]bool{"flat": true}, &dirty); err != nil {
		t.Fatal(err)
	}
	var count int64 = -1
	for _, n := range dirty {
		for _, b := range n.Bitmaps {
			if n.NodeName == "disk" && b.Name == "b0" {
				count = b.Count
			}
		}
	}
	if count != 65536 {
		t.Fatalf("bitmap b0 counts %d dirty bytes after a 64 KiB write, want 65536", count)
	}

	// An event, waited for by a subscription made before the command.
	sub := c.Subscribe("STOP")
	defer sub.Close()
	if err := c.Execute(ctx, "stop", nil, nil); err != nil {
		t.Fatal(err)
	}
	if e, err := sub.Next(ctx, nil); err != nil || e.Name != "STOP" || e.Time.IsZero() {
		t.Fatalf("STOP event: %+v %v", e, err)
	}

	// QEMU killed: a waiting subscription and later commands fail, saying so.
	wait := c.Subscribe("RESUME")
	q.Kill()
	if _, err := wait.Next(ctx, nil); err == nil || !strings.Contains(err.Error(), "QEMU exited") {
		t.Fatalf("subscription after QEMU died: %v", err)
	}
	if err := c.Execute(ctx, "query-status", nil, nil); err == nil || !strings.Contains(err.Error(), "QEMU exited") {
		t.Fatalf("command after QEMU died: %v", err)
	}
	if _, err := os.Stat(img); err != nil {
		t.Fatal(err)
	}
}

func TestDialNoSocket(t *testing.T) {
	_, err := Dial(context.Background(), filepath.Join(t.TempDir(), "none.sock"))
	if err == nil || !strings.Contains(err.Error(), "QMP socket") {
		t.Fatalf("Dial of a missing socket: %v", err)
	}
}

func TestParseMessageShapes(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{`{"QMP":{"version":{"qemu":{"major":7,"minor":2,"micro":0}},"capabilities":[]}}`, true},
		{`{"return":{},"id":3}`, true},
		{`{"error":{"class":"GenericError","desc":"no"},"id":3}`, true},
		{`{"event":"STOP","timestamp":{"seconds":1,"microseconds":2}}`, true},
		{`{"return":{},"error":{"class":"x","desc":"y"}}`, false},
		{`{"id":3}`, false},
		{`[1,2]`, false},
		{`{"return":{},"event":"STOP"}`, false},
	} {
		_, err := parseMessage([]byte(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("parseMessage(%s): %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}

func FuzzParseMessage(f *testing.F) {
	f.Add([]byte(`{"return":{"status":"running"},"id":1}`))
	f.Add([]byte(`{"event":"BLOCK_JOB_READY","data":{"device":"m"},"timestamp":{"seconds":1,"microseconds":2}}`))
	f.Add([]byte(`{"QMP":{"version":{"qemu":{"major":7,"minor":2,"micro":0}}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseMessage(b)
		if err != nil {
			return
		}
		if err := m.validate(); err != nil {
			t.Fatalf("accepted message fails validation again: %v", err)
		}
	})
}
