package tree

import (
	"encoding/binary"
	"testing"
)

// TestInFluxFlag: a file captured in flux keeps FlagInFlux (bit 2 of tag
// 21) through encoding, alongside the other flags.
func TestInFluxFlag(t *testing.T) {
	n := Node{Name: "busy.log", Type: File, Size: 12, Flags: FlagInFlux | FlagChanged}
	rec := AppendNode(nil, &n)
	l, k := binary.Uvarint(rec)
	got, err := DecodeNode(rec[k : k+int(l)])
	if err != nil {
		t.Fatal(err)
	}
	if got.Flags != FlagInFlux|FlagChanged || FlagInFlux != 1<<2 {
		t.Errorf("flags %b after a round trip, want %b (in flux is bit 2)", got.Flags, FlagInFlux|FlagChanged)
	}
}

// TestUnknownFieldsSkipped: a record with fields of tags this version does
// not know, of either wire type, as a newer writer may add them, decodes
// to the same node as without them.
func TestUnknownFieldsSkipped(t *testing.T) {
	n := Node{Name: "f", Type: File, Size: 3, Flags: FlagInFlux}
	rec := AppendNode(nil, &n)
	l, k := binary.Uvarint(rec)
	body := append([]byte(nil), rec[k:k+int(l)]...)
	body = appendVarint(body, 24, 12345)
	body = appendBytes(body, 40, "a field from the future")
	got, err := DecodeNode(body)
	if err != nil {
		t.Fatalf("a record with unknown fields: %v", err)
	}
	if !equalNodes(&got, &n) {
		t.Errorf("got %+v, want %+v", got, n)
	}
}
