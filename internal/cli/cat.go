package cli

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/lock"
	"github.com/rewind-backup/rewind/internal/pack"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/rewind-backup/rewind/internal/tree"
	"github.com/spf13/cobra"
)

func writeJSON(cmd *cobra.Command, v any) error {
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newCatCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "cat config|snapshot|index|key|pack|blob|tree [ID]",
		Short: "Print repository internals (for debugging)",
		Long: `Print a decrypted repository object: the config, a snapshot (ID prefix or
"latest"), an index file, a key file, a pack's header, a data blob's raw
bytes, or a tree blob decoded as JSON.`,
		Example: `  rewind cat config
  rewind cat snapshot latest
  rewind cat tree 1f0c...e2
  rewind cat blob 9a3b...77 > chunk.bin`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			what := args[0]
			if what != "config" && len(args) != 2 {
				return fmt.Errorf("cat %s needs an ID", what)
			}
			r, done, err := g.openLocked(ctx, lock.Shared, "cat", what == "blob" || what == "tree" || what == "pack")
			if err != nil {
				return err
			}
			defer done()
			parseID := func() (id.ID, error) { return id.Parse(args[1]) }
			switch what {
			case "config":
				return writeJSON(cmd, r.Config())
			case "snapshot":
				sn, err := snapshot.Find(ctx, r, args[1], snapshot.Filter{})
				if err != nil {
					return err
				}
				return writeJSON(cmd, SnapshotJSON{Snapshot: sn, ID: sn.ID.String(), ShortID: sn.ID.Short()})
			case "index":
				i, err := parseID()
				if err != nil {
					return err
				}
				f, err := r.LoadIndexFile(ctx, i)
				if err != nil {
					return err
				}
				return writeJSON(cmd, f)
			case "key":
				var raw []byte
				err := r.Backend().Load(ctx, backend.Handle{Type: backend.KeyFile, Name: args[1]}, 0, 0, func(rd io.Reader) error {
					raw, err = io.ReadAll(rd)
					return err
				})
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(raw)
				return err
			case "pack":
				i, err := parseID()
				if err != nil {
					return err
				}
				blobs, err := r.ReadPackHeader(ctx, i)
				if err != nil {
					return err
				}
				return writeJSON(cmd, blobs)
			case "blob":
				i, err := parseID()
				if err != nil {
					return err
				}
				b, err := r.LoadBlob(ctx, pack.DataBlob, i, nil)
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(b)
				return err
			case "tree":
				i, err := parseID()
				if err != nil {
					return err
				}
				var nodes []tree.Node
				err = snapshot.EachNode(ctx, r, []id.ID{i}, func(n *tree.Node) error {
					nodes = append(nodes, *n)
					return nil
				})
				if err != nil {
					return err
				}
				return writeJSON(cmd, nodes)
			}
			return fmt.Errorf("unknown object type %q: want config, snapshot, index, key, pack, blob or tree", what)
		},
	}
}
