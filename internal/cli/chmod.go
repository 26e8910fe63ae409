package cli

import (
	"errors"
	"fmt"
	"os/user"
	"strconv"

	"github.com/rewind-backup/rewind/internal/backend/local"
	"github.com/rewind-backup/rewind/internal/backend/location"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// accessFlags are the group access flags of init and chmod.
type accessFlags struct {
	groupAccess, groupRead, private bool
	group                           string
}

func addAccessFlags(f *pflag.FlagSet, a *accessFlags) {
	f.BoolVar(&a.groupAccess, "group-access", false, "let the repository's group read and write it (local repositories; e.g. root's backups and the postgres user's archive_command)")
	f.BoolVar(&a.groupRead, "group-read", false, "let the repository's group read it, not write it (local repositories)")
	f.StringVar(&a.group, "group", "", "give the repository to group `NAME` (with --group-access or --group-read)")
}

// access returns what the flags ask for, and whether they ask for
// anything.
func (a *accessFlags) access() (local.Access, bool, error) {
	n := 0
	for _, b := range []bool{a.groupAccess, a.groupRead, a.private} {
		if b {
			n++
		}
	}
	switch {
	case n > 1:
		return local.Access{}, false, errors.New("give one of --group-access, --group-read and --private")
	case n == 0 && a.group != "":
		return local.Access{}, false, errors.New("--group goes with --group-access or --group-read")
	case a.private && a.group != "":
		return local.Access{}, false, errors.New("--group goes with --group-access or --group-read, not --private")
	}
	return local.Access{GroupRead: a.groupAccess || a.groupRead, GroupWrite: a.groupAccess}, n == 1, nil
}

// gid resolves --group (-1 when not given).
func (a *accessFlags) gid() (int, error) {
	if a.group == "" {
		return -1, nil
	}
	gr, err := user.LookupGroup(a.group)
	if err != nil {
		if n, nerr := strconv.Atoi(a.group); nerr == nil {
			return n, nil
		}
		return -1, fmt.Errorf("--group: %w", err)
	}
	return strconv.Atoi(gr.Gid)
}

// apply sets the access of the local repository at loc.
func (a *accessFlags) apply(loc location.Location, acc local.Access) error {
	if loc.Scheme != location.Local {
		return fmt.Errorf("group access is for local repositories; %s is %s: grant access with the storage's own permissions", loc, loc.Scheme)
	}
	gid, err := a.gid()
	if err != nil {
		return err
	}
	return local.SetAccess(loc.Path, acc, gid)
}

func newChmodCmd(g *globals) *cobra.Command {
	var a accessFlags
	cmd := &cobra.Command{
		Use:   "chmod (--group-access | --group-read | --private) [--group NAME]",
		Short: "Share a local repository with its group, or make it private again",
		Long: `Change who may use a local repository besides its owner, for every file and
folder in it. Run it as the repository's owner or as root.

  --group-access  the group may read and write: folders 02770, files 0440
  --group-read    the group may only read: folders 02750, files 0440
  --private       only the owner: folders 0700, files 0400 (the default)

--group NAME gives the repository to that group first. Every later writer,
whoever runs it and whatever its umask, keeps the repository that way: the
access is read from the config file's group read bit and the repository
folder's group write bit, and the folders' set-group-ID bit gives new files
the repository's group. The same by hand:

  chgrp -R postgres REPO && chmod -R g+rX,g-w REPO && find REPO -type d -exec chmod g+ws {} +

Stored files are never writable by anyone: writing a repository means adding
and removing files, which needs write permission on its folders only. The
password file is not in the repository: give the group read access to it
too (chgrp postgres FILE && chmod 0440 FILE).

The common case is PostgreSQL: root runs rewind pg backup and rewind backup,
the postgres user runs pg wal-push as archive_command (docs/POSTGRES.md,
"Running as the postgres user").`,
		Example: `  rewind chmod --repo /backup/repo --group-access --group postgres
  rewind chmod --repo /backup/repo --group-read --group backup-readers
  rewind chmod --repo /backup/repo --private`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			acc, set, err := a.access()
			if err != nil {
				return err
			}
			if !set {
				return errors.New("give --group-access, --group-read or --private")
			}
			if g.usingDefault() {
				return errors.New("name the repository with --repo or REWIND_REPOSITORY")
			}
			loc, err := g.location()
			if err != nil {
				return err
			}
			if err := a.apply(loc, acc); err != nil {
				return err
			}
			if g.json {
				return g.ui.JSONDoc(map[string]any{"repository": loc.String(), "access": acc.String()})
			}
			g.ui.Printf("repository %s: %s\n", loc, acc)
			return nil
		},
	}
	addAccessFlags(cmd.Flags(), &a)
	cmd.Flags().BoolVar(&a.private, "private", false, "only the owner may use the repository")
	return cmd
}
