package cli

// backup --files-from, --files-from-verbatim and --files-from-raw: backup
// paths read from files (archiver.ReadPathList).

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/rewind-backup/rewind/internal/archiver"
)

// listOpts are backup's list-file flags.
type listOpts struct {
	lines, verbatim, raw []string
}

func (o *listOpts) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringArrayVar(&o.lines, "files-from", nil, "back up the paths listed in `file`, one per line; # comments and empty lines are ignored, spaces around a path trimmed; - is standard input (repeatable)")
	f.StringArrayVar(&o.verbatim, "files-from-verbatim", nil, "back up the paths listed in `file`, one per line, each exactly as written (repeatable)")
	f.StringArrayVar(&o.raw, "files-from-raw", nil, "back up the NUL-separated paths in `file`, as find -print0 writes them (repeatable)")
}

func (o *listOpts) given() bool { return len(o.lines)+len(o.verbatim)+len(o.raw) > 0 }

// targets returns args followed by the listed paths, after checking that
// every one of them exists: below root, when it is the system root of
// --system-root ("" otherwise), where each must be absolute.
func (o *listOpts) targets(args []string, root string) ([]string, error) {
	for _, a := range args {
		if root != "" && !filepath.IsAbs(a) {
			return nil, fmt.Errorf("backup path %q: with --system-root, give the system's own absolute paths (such as /etc); nothing was backed up", a)
		}
		if _, err := os.Lstat(filepath.Join(root, a)); err != nil {
			return nil, fmt.Errorf("backup path %q: %w; nothing was backed up", a, err)
		}
	}
	stdin := 0
	out := append([]string(nil), args...)
	for _, set := range []struct {
		files  []string
		format archiver.ListFormat
	}{{o.lines, archiver.ListLines}, {o.verbatim, archiver.ListVerbatim}, {o.raw, archiver.ListNUL}} {
		for _, f := range set.files {
			if f == "-" {
				if stdin++; stdin > 1 {
					return nil, errors.New("standard input (-) can be given to only one --files-from flag")
				}
			}
			listed, err := archiver.ReadPathList(f, set.format)
			if err != nil {
				return nil, err
			}
			if len(listed) == 0 {
				return nil, fmt.Errorf("%s lists no paths; nothing was backed up", f)
			}
			if err := archiver.CheckListedIn(root, listed); err != nil {
				return nil, err
			}
			for _, l := range listed {
				out = append(out, l.Path)
			}
		}
	}
	return out, nil
}
