package cli

// restore --device and --image: a device or image snapshot written back
// whole (restorer.RestoreImage, docs/IMAGES.md).

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/rewind-backup/rewind/internal/restorer"
	"github.com/rewind-backup/rewind/internal/ui"
)

// RestoreImageSummary is the JSON line of `restore --device` or
// `restore --image` (docs/JSON.md).
type RestoreImageSummary struct {
	MessageType string `json:"message_type"`
	SnapshotID  string `json:"snapshot_id"`
	Target      string `json:"target"`
	*restorer.ImageResult
}

// runRestoreImage writes the image of the snapshot named by args[0].
func runRestoreImage(cmd *cobra.Command, g *globals, o *restoreOpts, args []string) error {
	ctx := cmd.Context()
	if o.device != "" && o.image != "" {
		return errors.New("--device and --image exclude each other")
	}
	if o.target != "" || o.at != "" || o.overwrite || o.delete || o.dryRun || len(o.include) > 0 || len(o.exclude) > 0 {
		return errors.New("--device and --image write a whole image: they take none of --target, --at, --overwrite, --delete, --dry-run, --include, --exclude")
	}
	if len(args) != 1 {
		return errors.New("name the SNAPSHOT to restore")
	}
	t := restorer.ImageTarget{Path: o.image, Verify: o.verify}
	if o.device != "" {
		t.Path, t.Device = o.device, true
	}
	t.Path, _ = filepath.Abs(t.Path)
	r, sn, p, done, err := g.openSnapshot(ctx, "restore", args[0], o.filter())
	if err != nil {
		return err
	}
	defer done()
	if p != "" && p != "/" && (len(sn.Paths) != 1 || p != sn.Paths[0]) {
		return fmt.Errorf("--device and --image restore the snapshot's whole image: drop :%s", p)
	}
	if sn.Image == nil {
		return fmt.Errorf("snapshot %s is not a device or image backup (it holds %s); restore it with --target DIR", sn.ID.Short(), ui.Count(int64(len(sn.Paths)), "path", "paths"))
	}
	res, err := restorer.RestoreImage(ctx, r, sn, t)
	if err != nil {
		return err
	}
	if g.json {
		g.ui.JSONLine(RestoreImageSummary{MessageType: "summary", SnapshotID: sn.ID.String(), Target: t.Path, ImageResult: res})
		return nil
	}
	if !g.quiet {
		g.ui.Printf("restored %s (%s) to %s: wrote %s", sn.ID.Short(), ui.Bytes(res.Size), t.Path, ui.Bytes(res.BytesWritten))
		if res.BytesZeroed > 0 {
			g.ui.Printf(", zeroed %s (%s)", ui.Bytes(res.BytesZeroed), res.ZeroMethod)
		}
		g.ui.Printf("\n")
		if res.Verified {
			g.ui.Printf("verified: every block reads back as in the snapshot\n")
		}
	}
	return nil
}
