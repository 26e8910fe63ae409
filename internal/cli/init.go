package cli

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/backend/location"
	"github.com/rewind-backup/rewind/internal/policy"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/spf13/cobra"
)

func newInitCmd(g *globals) *cobra.Command {
	var o configOptions
	var from sourceRepo
	var ol objectLockFlags
	var acc accessFlags
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a new repository",
		Long: `Create a new, empty repository at --repo (or REWIND_REPOSITORY), protected by
the password from REWIND_PASSWORD, --password-file, --password-command or a
prompt. The default repository needs no init: the first backup creates it.

--min-retention with --admin-key-file sets the repository's minimum
retention at once, as rewind config does (see rewind config --help).

--copy-chunker-params-from SOURCE makes the new repository cut and name data
as the repository SOURCE does (its chunker parameters, chunker secret and ID
key; the encryption key is new), for rewind copy between the two: see
rewind copy --help. The source's password comes from REWIND_FROM_PASSWORD,
--from-password-file or --from-password-command.

--object-lock DURATION (s3 only) writes everything a restore needs with S3
Object Lock, so that no snapshot can be deleted or overwritten for DURATION
after it is taken, not even with the credentials that wrote it: see
docs/OBJECT-LOCK.md. A missing bucket is created with object lock; an
existing one must have it.

--group-access (local repositories) lets the repository's group read and
write it, --group-read only read it; --group NAME gives it to that group.
That is how root's backups and the postgres user's archive_command share
one repository: see rewind chmod --help.`,
		Example: `  rewind init --repo /srv/backup/repo
  REWIND_PASSWORD_FILE=/root/.rewind-pw rewind init --repo local:/mnt/usb/rewind
  rewind init --repo /srv/backup/repo --min-retention 30d --admin-key-file /root/rewind-admin.pem
  rewind init --repo s3:https://s3.example.com/offsite/web1 --copy-chunker-params-from /srv/backup/repo
  rewind init --repo s3:https://s3.example.com/locked-backups/web1 --object-lock 30d
  rewind init --repo /backup/pg --group-access --group postgres`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if g.usingDefault() {
				return errors.New("name the repository with --repo or REWIND_REPOSITORY (the default repository is created by `rewind backup`)")
			}
			loc, err := g.location()
			if err != nil {
				return err
			}
			minRet, withPolicy, err := initPolicyFlags(cmd, &o)
			if err != nil {
				return err
			}
			objectLock, err := ol.parse(cmd, loc)
			if err != nil {
				return err
			}
			access, withAccess, err := acc.access()
			if err != nil {
				return err
			}
			if withAccess && loc.Scheme != location.Local {
				return fmt.Errorf("--group-access and --group-read are for local repositories, not %s", loc.Scheme)
			}
			if _, err := acc.gid(); err != nil {
				return err
			}
			var src *repository.Repository
			if from.location != "" {
				if src, _, err = g.openSource(ctx, &from, "--copy-chunker-params-from"); err != nil {
					return err
				}
				defer src.Close()
			}
			pw, err := g.password(ctx, "Password for the new repository: ")
			if err != nil {
				return err
			}
			var key ed25519.PrivateKey
			if withPolicy {
				// The key comes first: a key file that cannot be
				// made or read stops init before the repository
				// exists.
				var created bool
				if key, created, err = policy.LoadOrCreateKeyFile(o.adminKeyFile); err != nil {
					return err
				}
				if created {
					g.ui.Warnf("Created the admin key in %s (mode 0600). Keep it away from the backup clients, and keep a copy:\n"+
						"without it the minimum retention cannot be changed.\n", o.adminKeyFile)
				}
			}
			var be backend.Backend
			if objectLock.Enabled() {
				be, err = g.createLockedBackend(ctx, loc, objectLock)
			} else {
				be, err = g.createBackend(ctx, loc)
			}
			if errors.Is(err, backend.ErrExists) {
				return fmt.Errorf("init %s: %w", loc, repository.ErrRepositoryExists)
			}
			if err != nil {
				return fmt.Errorf("create repository: %w", err)
			}
			r, err := createRepository(ctx, be, pw, src)
			if err != nil {
				be.Close()
				return err
			}
			defer r.Close()
			if withAccess {
				if err := acc.apply(loc, access); err != nil {
					return fmt.Errorf("the repository was created, but its access could not be set (run rewind chmod): %w", err)
				}
			}
			if withPolicy {
				if err := setPolicy(ctx, r, &policy.State{}, minRet, key, o.adminKeyFile, time.Now()); err != nil {
					return fmt.Errorf("the repository was created, but its policy could not be set (run rewind config): %w", err)
				}
				g.ui.Infof("minimum retention %s, guarded by admin key %s\n", formatMinRetention(minRet), policy.Fingerprint(key.Public().(ed25519.PublicKey)))
			}
			cfg := r.Config()
			if g.json {
				g.ui.JSONLine(map[string]any{"message_type": "initialized", "id": cfg.ID, "repository": loc.String()})
				return nil
			}
			g.ui.Printf("created repository %s at %s\n", cfg.ID.Short(), loc)
			if withAccess {
				g.ui.Printf("access: %s (rewind chmod --help)\n", access)
			}
			if objectLock.Enabled() {
				g.ui.Printf("S3 object lock %s: each snapshot and what it needs stay immutable that long (docs/OBJECT-LOCK.md)\n", objectLock)
			}
			g.ui.Printf("Keep the password safe: without it the data cannot be read.\n")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.minRetention, "min-retention", "", "set the minimum retention to `DURATION` (e.g. 30d; needs --admin-key-file)")
	f.StringVar(&o.adminKeyFile, "admin-key-file", "", "the admin key's PEM `file`, created with mode 0600 if it does not exist")
	f.StringVar(&from.location, "copy-chunker-params-from", "", "cut and name data as the repository at `location` does, for rewind copy from it")
	from.addPasswordFlags(f)
	addObjectLockFlags(cmd, &ol)
	addAccessFlags(f, &acc)
	return cmd
}

// initPolicyFlags checks --min-retention and --admin-key-file of init,
// which go together.
func initPolicyFlags(cmd *cobra.Command, o *configOptions) (time.Duration, bool, error) {
	set := cmd.Flags().Changed("min-retention")
	switch {
	case !set && o.adminKeyFile == "":
		return 0, false, nil
	case !set:
		return 0, false, errors.New("--admin-key-file goes with --min-retention (0 for no minimum)")
	case o.adminKeyFile == "":
		return 0, false, errors.New("--min-retention needs --admin-key-file: the admin key guards it (a new key is written there if the file does not exist)")
	}
	d, err := parseMinRetention(o.minRetention)
	if err != nil {
		return 0, false, fmt.Errorf("--min-retention: %w", err)
	}
	return d, true, nil
}
