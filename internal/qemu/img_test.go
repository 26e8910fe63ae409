package qemu

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rewind-backup/rewind/internal/testutil"
)

func TestImgOverlayConvertCompare(t *testing.T) {
	testutil.RequireQEMU(t)
	ctx := context.Background()
	dir := t.TempDir()
	raw := filepath.Join(dir, "base.raw")
	data := make([]byte, 4<<20)
	for i := range data[1<<20 : 2<<20] {
		data[1<<20+i] = byte(i * 7)
	}
	if err := os.WriteFile(raw, data, 0o600); err != nil {
		t.Fatal(err)
	}
	over := filepath.Join(dir, "over.qcow2")
	if err := CreateOverlay(ctx, over, raw, FormatRaw); err != nil {
		t.Fatal(err)
	}
	info, err := Info(ctx, over, false)
	if err != nil {
		t.Fatal(err)
	}
	if info.Format != FormatQcow2 || info.VirtualSize != int64(len(data)) || info.BackingFilename != raw {
		t.Fatalf("overlay info %+v", info)
	}
	same, err := Compare(ctx, raw, FormatRaw, over, FormatQcow2)
	if err != nil || !same {
		t.Fatalf("overlay differs from its backing file: %v %v", same, err)
	}
	out := filepath.Join(dir, "copy.qcow2")
	if err := Convert(ctx, over, FormatQcow2, out, FormatQcow2); err != nil {
		t.Fatal(err)
	}
	if info, err := Info(ctx, out, false); err != nil || info.BackingFilename != "" {
		t.Fatalf("converted image %+v %v still has a backing file", info, err)
	}
	data[3<<20] = 1
	if err := os.WriteFile(raw, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if same, err := Compare(ctx, raw, FormatRaw, out, FormatQcow2); err != nil || same {
		t.Fatalf("changed image compares equal: %v %v", same, err)
	}
	// A missing file: qemu-img's own words reach the caller.
	if _, err := Info(ctx, filepath.Join(dir, "none"), false); err == nil || !strings.Contains(err.Error(), "qemu-img info") {
		t.Fatalf("Info of a missing file: %v", err)
	}
}

func TestLookPathNamesPackage(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := LookPath(ImgProgram)
	if err == nil || !strings.Contains(err.Error(), "qemu-utils") {
		t.Fatalf("missing qemu-img: %v", err)
	}
}

func FuzzParseInfo(f *testing.F) {
	f.Add([]byte(`{"format":"qcow2","virtual-size":1073741824,"format-specific":{"type":"qcow2","data":{"bitmaps":[{"name":"b","granularity":65536,"flags":["auto"]}]}}}`))
	f.Add([]byte(`{"format":"raw","virtual-size":-1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := parseInfo(b)
		if err == nil && (info.Format == "" || info.VirtualSize < 0) {
			t.Fatalf("accepted %+v", info)
		}
	})
}
