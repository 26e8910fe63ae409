package cli

import (
	"errors"
	"fmt"

	"github.com/rewind-backup/rewind/internal/backend/location"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/spf13/cobra"
)

func newInitCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "init",
		Short: "Create a new repository",
		Long: `Create a new, empty repository at --repo (or REWIND_REPOSITORY), protected by
the password from REWIND_PASSWORD, --password-file, --password-command or a
prompt. The default repository needs no init: the first backup creates it.`,
		Example: `  rewind init --repo /srv/backup/repo
  REWIND_PASSWORD_FILE=/root/.rewind-pw rewind init --repo local:/mnt/usb/rewind`,
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
			pw, err := g.password(ctx, "Password for the new repository: ")
			if err != nil {
				return err
			}
			be, err := location.Create(ctx, loc)
			if err != nil {
				return fmt.Errorf("create repository: %w", err)
			}
			r, err := repository.Init(ctx, be, pw, repository.InitOptions{})
			if err != nil {
				be.Close()
				return err
			}
			defer r.Close()
			cfg := r.Config()
			if g.json {
				g.ui.JSONLine(map[string]any{"message_type": "initialized", "id": cfg.ID, "repository": loc.String()})
				return nil
			}
			g.ui.Printf("created repository %s at %s\n", cfg.ID.Short(), loc)
			g.ui.Printf("Keep the password safe: without it the data cannot be read.\n")
			return nil
		},
	}
}
