package diskimage

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func TestPartitionedRuns(t *testing.T) {
	a := newAllocation(100, 10)
	a.setRange(2, 1)
	p := &Partitioned{Parts: []Partition{{Off: 1000, Len: 1000, Alloc: a}}}
	got := p.Runs(500, 2000)
	want := []Run{{500, 500}, {1200, 100}, {2000, 500}}
	if len(got) != len(want) {
		t.Fatalf("runs %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("runs %v, want %v", got, want)
		}
	}
}

// mbrSeed is a disk of 2 MiB whose MBR holds the golden ext4 in a
// partition at 1 MiB.
func mbrSeed(t testing.TB) []byte {
	img := golden(t)
	b := make([]byte, 2<<20)
	copy(b[1<<20:], img)
	e := b[446:]
	e[4] = 0x83
	binary.LittleEndian.PutUint32(e[8:], (1<<20)/512)
	binary.LittleEndian.PutUint32(e[12:], uint32(len(img)/512))
	b[510], b[511] = 0x55, 0xAA
	return b
}

func TestPartitionsAllocationMBR(t *testing.T) {
	b := mbrSeed(t)
	p, err := PartitionsAllocation(bytes.NewReader(b), int64(len(b)))
	if err != nil || p == nil || len(p.Parts) != 1 || p.Parts[0].Method != "ext4-bitmap" {
		t.Fatalf("%+v, %v", p, err)
	}
	var read int64
	for _, r := range p.Runs(0, int64(len(b))) {
		read += r.Len
	}
	// All but the partition's free blocks: 2 MiB less 384 KiB.
	if want := int64(len(b)) - 384*1024; read != want {
		t.Errorf("read %d, want %d", read, want)
	}
}

// FuzzPartitionsAllocation feeds corrupt partition tables: an error or
// a map, never a panic; the map's runs stay inside the range asked.
func FuzzPartitionsAllocation(f *testing.F) {
	f.Add(mbrSeed(f)[:4096])
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := PartitionsAllocation(bytes.NewReader(b), int64(len(b)))
		if err != nil || p == nil {
			return
		}
		for _, r := range p.Runs(0, int64(len(b))) {
			if r.Off < 0 || r.Len <= 0 || r.Off+r.Len > int64(len(b)) {
				t.Fatalf("run %+v outside %d bytes", r, len(b))
			}
		}
	})
}
