package pg

import (
	"testing"

	"github.com/rewind-backup/rewind/internal/pg/walparse"
)

func TestRelFile(t *testing.T) {
	for _, c := range []struct {
		path string
		want walparse.RelFork
		seg  uint32
		ok   bool
	}{
		{"base/5/16384", walparse.RelFork{RelFileNode: walparse.RelFileNode{Spc: 1663, DB: 5, Rel: 16384}}, 0, true},
		{"base/5/16384.2", walparse.RelFork{RelFileNode: walparse.RelFileNode{Spc: 1663, DB: 5, Rel: 16384}}, 2, true},
		{"base/5/16384_vm", walparse.RelFork{RelFileNode: walparse.RelFileNode{Spc: 1663, DB: 5, Rel: 16384}, Fork: walparse.ForkVM}, 0, true},
		{"base/5/16384_fsm.1", walparse.RelFork{RelFileNode: walparse.RelFileNode{Spc: 1663, DB: 5, Rel: 16384}, Fork: walparse.ForkFSM}, 1, true},
		{"global/1262", walparse.RelFork{RelFileNode: walparse.RelFileNode{Spc: 1664, Rel: 1262}}, 0, true},
		{"pg_tblspc/16500/PG_15_202209061/5/16501", walparse.RelFork{RelFileNode: walparse.RelFileNode{Spc: 16500, DB: 5, Rel: 16501}}, 0, true},
		{"base/5/t3_16384", walparse.RelFork{}, 0, false},
		{"base/5/PG_VERSION", walparse.RelFork{}, 0, false},
		{"global/pg_control", walparse.RelFork{}, 0, false},
		{"base/5/16384_xx", walparse.RelFork{}, 0, false},
		{"base/5/16384.", walparse.RelFork{}, 0, false},
		{"base/5/+1", walparse.RelFork{}, 0, false},
		{"pg_xact/0000", walparse.RelFork{}, 0, false},
	} {
		k, seg, ok := relFile(c.path)
		if ok != c.ok || (ok && (k != c.want || seg != c.seg)) {
			t.Errorf("%s: %+v %d %v, want %+v %d %v", c.path, k, seg, ok, c.want, c.seg, c.ok)
		}
	}
}
