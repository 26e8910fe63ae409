package cli

import (
	"errors"
	"os"

	"github.com/rewind-backup/rewind/internal/restorer"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func newDumpCmd(g *globals) *cobra.Command {
	var sf snapFilter
	cmd := &cobra.Command{
		Use:   "dump SNAPSHOT:PATH",
		Short: "Write a file to stdout, or a directory as a tar stream",
		Long: `Write one file from a snapshot to standard output, byte for byte. A directory
is written as a tar archive (PAX) of itself and everything below it, which
GNU tar and bsdtar extract in full: hard links as links, sparse files as
GNU sparse 1.0 entries (holes stay holes), POSIX ACLs as the SCHILY.acl
records GNU tar's --acls applies, xattrs, devices, FIFOs, owners, modes and
nanosecond times.

Standard output must not be a terminal: redirect it to a file or pipe it.

Entries whose names restore refuses too ("..", ".", an empty name, a name
holding '/' or NUL, a second entry of one name in a directory) are left out
of the archive: an extractor that trusts its input would write them outside
its target. Each is named on standard error, with its name quoted, and the
exit status is then 3.`,
		Example: `  rewind dump latest:/etc/nginx/nginx.conf > nginx.conf
  rewind dump latest:/etc/hosts | less
  rewind dump latest:/var/www > www.tar
  rewind dump latest:/srv | tar --acls --xattrs --xattrs-include='*' --sparse -p -xf - -C /mnt/srv
  rewind dump 4f2a91c3:/home/alice | tar -t`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			if f, ok := out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				return errors.New("dump: standard output is a terminal; redirect it to a file or pipe it, as in: rewind dump " + args[0] + " > out.tar, or: rewind dump " + args[0] + " | tar -t")
			}
			ctx := cmd.Context()
			r, sn, p, done, err := g.openSnapshot(ctx, "dump", args[0], sf.filter())
			if err != nil {
				return err
			}
			defer done()
			err = restorer.Dump(ctx, r, sn, p, out, func(q string, err error) {
				g.ui.Warnf("left out %s: %v\n", shownPath(q), err)
			})
			if errors.Is(err, restorer.ErrEntriesRefused) || errors.Is(err, restorer.ErrIncomplete) {
				return withCode(ExitPartial, err)
			}
			return err
		},
	}
	sf.add(cmd)
	return cmd
}
