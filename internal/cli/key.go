package cli

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/rewind-backup/rewind/internal/backend"
	"github.com/rewind-backup/rewind/internal/crypto"
	"github.com/rewind-backup/rewind/internal/id"
	"github.com/rewind-backup/rewind/internal/password"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/ui"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func newKeyCmd(g *globals) *cobra.Command {
	var newPwFile string
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Manage the passwords (key files) that open the repository",
		Long: `A repository has one random master key, stored once per password in a key
file. Adding or changing a password never re-encrypts data.`,
		Example: `  rewind key list
  rewind key add --new-password-file /root/ops-pw
  rewind key passwd
  rewind key remove 1a2b3c4d`,
	}
	cmd.PersistentFlags().StringVar(&newPwFile, "new-password-file", "", "read the new password from `file` (else REWIND_NEW_PASSWORD or a prompt)")
	newPassword := func(_ context.Context) ([]byte, error) {
		if newPwFile != "" {
			return password.ReadFile(password.Setting{Name: "--new-password-file", Kind: password.File, Flag: true, Value: newPwFile})
		}
		if p, ok := os.LookupEnv("REWIND_NEW_PASSWORD"); ok {
			return []byte(p), nil
		}
		if !term.IsTerminal(int(os.Stdin.Fd())) {
			return nil, fmt.Errorf("no new password given: use --new-password-file or REWIND_NEW_PASSWORD")
		}
		fmt.Fprint(os.Stderr, "New password: ")
		pw, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(os.Stderr)
		return pw, err
	}
	list := &cobra.Command{
		Use: "list", Short: "List key files", Args: cobra.NoArgs,
		Example: "  rewind key list --json",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			r, err := g.openRepo(ctx, false)
			if err != nil {
				return err
			}
			defer r.Close()
			keys, err := r.ListKeys(ctx)
			if err != nil {
				return err
			}
			if g.json {
				if keys == nil {
					keys = []repository.KeyInfo{}
				}
				return g.ui.JSONDoc(keys)
			}
			// The key this command opened the repository with has a "*"
			// after its ID.
			t := ui.NewTable("ID", "User", "Host", "Created")
			for _, k := range keys {
				cur := ""
				if k.Current {
					cur = "*"
				}
				t.Row(k.ID.Short()+cur, k.Username, k.Hostname, k.Created.Local().Format(timeFormat))
			}
			g.ui.Table(t)
			return nil
		},
	}
	add := &cobra.Command{
		Use: "add", Short: "Add a password", Args: cobra.NoArgs,
		Example: "  REWIND_NEW_PASSWORD=... rewind key add",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			r, err := g.openRepo(ctx, false)
			if err != nil {
				return err
			}
			defer r.Close()
			pw, err := newPassword(ctx)
			if err != nil {
				return err
			}
			i, err := r.AddKey(ctx, pw, crypto.KDFParams{})
			if err != nil {
				return err
			}
			g.ui.Printf("added key %s\n", i.Short())
			return nil
		},
	}
	passwd := &cobra.Command{
		Use: "passwd", Short: "Change the password in use", Args: cobra.NoArgs,
		Example: "  rewind key passwd --new-password-file /root/new-pw",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			r, err := g.openRepo(ctx, false)
			if err != nil {
				return err
			}
			defer r.Close()
			pw, err := newPassword(ctx)
			if err != nil {
				return err
			}
			i, err := r.ChangePassword(ctx, pw, crypto.KDFParams{})
			if err != nil {
				return err
			}
			g.ui.Printf("password changed; new key %s\n", i.Short())
			return nil
		},
	}
	remove := &cobra.Command{
		Use: "remove ID", Short: "Remove a password (key file)", Args: cobra.ExactArgs(1),
		Example: "  rewind key remove 1a2b3c4d",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			r, err := g.openRepo(ctx, false)
			if err != nil {
				return err
			}
			defer r.Close()
			ids, err := r.List(ctx, backend.KeyFile)
			if err != nil {
				return err
			}
			var match []id.ID
			for _, i := range ids {
				if strings.HasPrefix(i.String(), strings.ToLower(args[0])) {
					match = append(match, i)
				}
			}
			if len(match) != 1 {
				return fmt.Errorf("key %q matches %s; give a unique prefix", args[0], ui.Count(int64(len(match)), "key file", "key files"))
			}
			if err := r.RemoveKey(ctx, match[0]); err != nil {
				return err
			}
			g.ui.Printf("removed key %s\n", match[0].Short())
			return nil
		},
	}
	cmd.AddCommand(list, add, passwd, remove)
	return cmd
}
