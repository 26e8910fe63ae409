package qemupull

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/rewind-backup/rewind/internal/nbd"
)

// cleanLeftovers removes what a killed backup left in QEMU (the export,
// the NBD server, the job with its copy-before-write filter, the
// fleecing node), and returns what it did. Its bitmaps are folded back
// by foldBitmaps: merged into the parent's, so that this backup reads
// the writes they hold, or removed when there is no usable parent
// bitmap (this backup reads everything anyway).
func (s *Session) cleanLeftovers(ctx context.Context) ([]string, error) {
	var did []string
	has := func(query, field, value string) (bool, error) {
		var list []map[string]any
		if err := s.qmp.Execute(ctx, query, nil, &list); err != nil {
			return false, err
		}
		return slices.ContainsFunc(list, func(m map[string]any) bool { return m[field] == value }), nil
	}
	if ok, err := has("query-block-exports", "id", exportID); err != nil {
		return nil, err
	} else if ok {
		if err := s.delExport(ctx); err != nil {
			return nil, fmt.Errorf("remove the NBD export a killed backup left: %w", err)
		}
		_ = s.qmp.Execute(ctx, "nbd-server-stop", nil, nil)
		did = append(did, "removed the NBD export of an earlier backup")
	}
	if ok, err := has("query-block-jobs", "device", jobID); err != nil {
		return nil, err
	} else if ok {
		if err := s.cancelJob(ctx); err != nil {
			return nil, fmt.Errorf("cancel the fleecing job a killed backup left: %w", err)
		}
		did = append(did, "cancelled the fleecing job of an earlier backup")
	}
	if ok, err := has("query-named-block-nodes", "node-name", fleeceNode); err != nil {
		return nil, err
	} else if ok {
		var old string
		if nodes, err := queryNodes(ctx, s.qmp); err == nil {
			for _, n := range nodes {
				if n.NodeName == fleeceNode {
					old = fileName(n.File)
				}
			}
		}
		if err := s.qmp.Execute(ctx, "blockdev-del", map[string]any{"node-name": fleeceNode}, nil); err != nil {
			return nil, fmt.Errorf("remove the fleecing node a killed backup left: %w", err)
		}
		did = append(did, "removed the fleecing node of an earlier backup")
		// Its private directory, when it is one of ours.
		if dir := filepath.Dir(old); filepath.Base(old) == "fleece.qcow2" && strings.HasPrefix(filepath.Base(dir), "rewind-qemu-") {
			os.RemoveAll(dir)
		}
	}
	return did, nil
}

// foldBitmaps is the second half of cleaning up after a killed backup,
// once the drive's node is known (the fleecing filter gone): every
// other rewind bitmap on the drive is merged into since, the parent's,
// which records again; without since they are removed.
func (s *Session) foldBitmaps(ctx context.Context, since string) ([]string, error) {
	var did []string
	bms, err := bitmaps(ctx, s.qmp, s.Node)
	if err != nil {
		return nil, err
	}
	var stale []string
	found := false
	for _, b := range bms {
		switch {
		case b.Name == since:
			found = !b.Inconsistent
			if found && !b.Recording {
				if err := s.qmp.Execute(ctx, "block-dirty-bitmap-enable", map[string]any{"node": s.Node, "name": since}, nil); err != nil {
					return nil, err
				}
				did = append(did, "re-enabled the dirty bitmap "+since)
			}
		case strings.HasPrefix(b.Name, BitmapPrefix):
			stale = append(stale, b.Name)
		}
	}
	for _, name := range stale {
		var actions []map[string]any
		if found {
			actions = append(actions, map[string]any{"type": "block-dirty-bitmap-merge", "data": map[string]any{"node": s.Node, "target": since, "bitmaps": []string{name}}})
		}
		actions = append(actions, map[string]any{"type": "block-dirty-bitmap-remove", "data": map[string]any{"node": s.Node, "name": name}})
		if err := s.qmp.Execute(ctx, "transaction", map[string]any{"actions": actions}, nil); err != nil {
			return nil, fmt.Errorf("fold the dirty bitmap %s of an earlier backup: %w", name, err)
		}
		if found {
			did = append(did, "merged the dirty bitmap "+name+" of an earlier backup into "+since)
		} else {
			did = append(did, "removed the dirty bitmap "+name+" of an earlier backup")
		}
	}
	return did, nil
}

// Range is a run of bytes of the drive.
type Range = nbd.Range

// Dirty returns the ranges of the drive written since the parent's
// bitmap started (with Since set), or those that hold data (otherwise).
func (s *Session) Dirty() ([]Range, error) {
	if s.Since != "" && !s.whole {
		return s.NBD.Scan("qemu:dirty-bitmap:"+s.Since, func(f uint32) bool { return f&nbd.StateDirty != 0 })
	}
	return s.NBD.Scan("base:allocation", func(f uint32) bool { return f&nbd.StateZero == 0 })
}

// ReadWhole makes Dirty return what holds data even though the parent's
// bitmap is there (the drive changed size); Finish still hands the
// bitmap on.
func (s *Session) ReadWhole(why string) {
	s.whole, s.Fallback = true, why
}

// fileName is the file under a node's filename, which QEMU gives as
// "json:{...}" when the node's options cannot be a plain path (a
// fleecing node with its backing given by node name).
func fileName(f string) string {
	j, ok := strings.CutPrefix(f, "json:")
	if !ok {
		return f
	}
	var o struct {
		File struct {
			Filename string `json:"filename"`
		} `json:"file"`
	}
	if json.Unmarshal([]byte(j), &o) != nil {
		return ""
	}
	return o.File.Filename
}
