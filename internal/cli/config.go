package cli

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/rewind-backup/rewind/internal/policy"
	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/rewind-backup/rewind/internal/snapshot"
	"github.com/spf13/cobra"
)

// ConfigJSON is the output of `rewind config --json` (docs/JSON.md).
type ConfigJSON struct {
	MinRetentionSeconds int64     `json:"min_retention_seconds"`
	AdminKeyFingerprint string    `json:"admin_key_fingerprint,omitempty"`
	PolicySeq           uint64    `json:"policy_seq"`
	PolicyFile          string    `json:"policy_file,omitempty"`
	PolicyTime          time.Time `json:"policy_time,omitzero"`
	IgnoredPolicyFiles  []string  `json:"ignored_policy_files,omitempty"`
}

// configOptions are the flags of `rewind config`.
type configOptions struct {
	minRetention string
	adminKeyFile string
}

func newConfigCmd(g *globals) *cobra.Command {
	var o configOptions
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show or change the repository policy: the minimum retention",
		Long: `Without flags, show the repository policy: the minimum retention, the
fingerprint of the admin key that guards it, and the policy's number.

--min-retention sets the minimum retention: no rewind client forgets a
snapshot younger than it, whatever its --keep-* options or arguments. It
needs the admin key, an Ed25519 private key in a PEM file kept away from
the backup clients (--admin-key-file). The first time (or at init) the key
file is created, with mode 0600, unless it exists already, in which case
the key in it becomes the admin key. From then on every change, raising or
lowering, needs that same key file. 0 removes the minimum.

DURATION is written as for forget --keep-within: 30d, 2w, 1y, 36h.

This guards against mistakes on the client side. A client that holds the
repository password can still delete files from the storage by other means;
object lock on the storage and the backup server enforce the policy against
such a client (future work). See docs/RETENTION.md.`,
		Example: `  rewind config
  rewind config --json
  rewind config --min-retention 30d --admin-key-file /root/rewind-admin.pem
  rewind config --min-retention 0 --admin-key-file /root/rewind-admin.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runConfig(cmd.Context(), g, &o, cmd.Flags().Changed("min-retention"), time.Now())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.minRetention, "min-retention", "", "set the minimum retention to `DURATION` (e.g. 30d, 1y; 0 for none)")
	f.StringVar(&o.adminKeyFile, "admin-key-file", "", "the admin key's PEM `file` (created with mode 0600 if the repository has no policy yet and the file does not exist)")
	return cmd
}

func runConfig(ctx context.Context, g *globals, o *configOptions, change bool, now time.Time) error {
	var minRet time.Duration
	if change {
		var err error
		if minRet, err = parseMinRetention(o.minRetention); err != nil {
			return fmt.Errorf("--min-retention: %w", err)
		}
		if o.adminKeyFile == "" {
			return errors.New("changing the minimum retention needs the admin key: give --admin-key-file FILE (the first time, a new key is written there)")
		}
	}
	r, err := g.openRepo(ctx, false)
	if err != nil {
		return err
	}
	defer r.Close()
	st, err := g.loadPolicy(ctx, r)
	if err != nil {
		return err
	}

	if !change {
		if o.adminKeyFile != "" {
			if err := checkAdminKey(g, st, o.adminKeyFile); err != nil {
				return err
			}
		}
		return printConfig(g, st)
	}

	var key ed25519.PrivateKey
	created := false
	if st.Current == nil {
		key, created, err = policy.LoadOrCreateKeyFile(o.adminKeyFile)
	} else {
		key, err = policy.ReadKeyFile(o.adminKeyFile)
	}
	if err != nil {
		return err
	}
	if created {
		g.ui.Warnf("Created the admin key in %s (mode 0600). Keep it away from the backup clients, and keep a copy:\n"+
			"without it the minimum retention cannot be changed.\n", o.adminKeyFile)
	}
	if st.Current != nil && key.Public().(ed25519.PublicKey).Equal(st.Current.AdminKey) && st.Current.MinRetention == minRet {
		g.ui.Infof("the minimum retention is already %s; nothing changed\n", formatMinRetention(minRet))
		return printConfig(g, st)
	}
	if err := setPolicy(ctx, r, st, minRet, key, o.adminKeyFile, now); err != nil {
		return err
	}
	g.ui.Infof("minimum retention set to %s (policy %d)\n", formatMinRetention(minRet), st.Current.Seq)
	return printConfig(g, st)
}

// setPolicy stores the policy that follows st.Current with minRet, signed
// by key (read from keyFile), and makes it st.Current.
func setPolicy(ctx context.Context, r *repository.Repository, st *policy.State, minRet time.Duration, key ed25519.PrivateKey, keyFile string, now time.Time) error {
	p, err := policy.Next(r.Config().ID, st.Current, minRet, key, now)
	if errors.Is(err, policy.ErrWrongKey) {
		return fmt.Errorf("%w; %s holds another key", err, keyFile)
	}
	if err != nil {
		return err
	}
	if err := policy.Save(ctx, r, p); err != nil {
		return err
	}
	st.Current = p
	return nil
}

// checkAdminKey tells whether file holds the admin key of the current
// policy, failing when it does not.
func checkAdminKey(g *globals, st *policy.State, file string) error {
	key, err := policy.ReadKeyFile(file)
	if err != nil {
		return err
	}
	pub := key.Public().(ed25519.PublicKey)
	if st.Current == nil {
		return fmt.Errorf("the repository has no policy, so no admin key; %s holds %s", file, policy.Fingerprint(pub))
	}
	if !pub.Equal(st.Current.AdminKey) {
		return fmt.Errorf("%w: %s holds %s, the policy's admin key is %s", policy.ErrWrongKey, file, policy.Fingerprint(pub), policy.Fingerprint(st.Current.AdminKey))
	}
	g.ui.Infof("%s holds the admin key of the repository's policy\n", file)
	return nil
}

// loadPolicy reads the repository policy, warning about every policy file
// that is not part of its chain.
func (g *globals) loadPolicy(ctx context.Context, r *repository.Repository) (*policy.State, error) {
	st, err := policy.Load(ctx, r)
	if err != nil {
		return nil, err
	}
	for _, ig := range st.Ignored {
		g.ui.Warnf("ignoring %v\n", ig)
	}
	return st, nil
}

// parseMinRetention reads --min-retention: "0" for none, else a duration
// as --keep-within takes it, in whole seconds.
func parseMinRetention(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	d, err := parseRetention(s)
	if err != nil {
		return 0, err
	}
	if d%time.Second != 0 {
		return 0, fmt.Errorf("duration %q is not a whole number of seconds", s)
	}
	if d > policy.MaxMinRetention {
		return 0, fmt.Errorf("duration %q is longer than %s", s, snapshot.FormatDuration(policy.MaxMinRetention))
	}
	return d, nil
}

func formatMinRetention(d time.Duration) string {
	if d == 0 {
		return "none"
	}
	return snapshot.FormatDuration(d)
}

func printConfig(g *globals, st *policy.State) error {
	if g.json {
		j := ConfigJSON{MinRetentionSeconds: int64(st.MinRetention() / time.Second)}
		if p := st.Current; p != nil {
			j.AdminKeyFingerprint = policy.Fingerprint(p.AdminKey)
			j.PolicySeq = p.Seq
			j.PolicyFile = p.File.String()
			j.PolicyTime = p.Time.UTC()
		}
		for _, ig := range st.Ignored {
			j.IgnoredPolicyFiles = append(j.IgnoredPolicyFiles, ig.File.String())
		}
		return g.ui.JSONDoc(j)
	}
	p := st.Current
	if p == nil {
		g.ui.Printf("minimum retention  none\n")
		g.ui.Printf("admin key          none\n")
		g.ui.Printf("policy             none; set one with `rewind config --min-retention DURATION --admin-key-file FILE`\n")
		return nil
	}
	g.ui.Printf("minimum retention  %s\n", formatMinRetention(p.MinRetention))
	g.ui.Printf("admin key          %s\n", policy.Fingerprint(p.AdminKey))
	g.ui.Printf("policy             %d, set %s (policy/%s)\n", p.Seq, p.Time.Local().Format("2006-01-02 15:04:05"), p.File.Short())
	return nil
}
