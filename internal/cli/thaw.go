package cli

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/rewind-backup/rewind/internal/fsfreeze"
)

// newInternalThawCmd is the watchdog a plan's fsfreeze step starts
// before it freezes a filesystem (docs/STEPS.md): it thaws MOUNT when
// --after has passed, or as soon as the process --pid is gone, unless it
// is stopped (SIGTERM) first. It is hidden: only the job runner starts it.
func newInternalThawCmd(g *globals) *cobra.Command {
	var after time.Duration
	var pid int
	cmd := &cobra.Command{
		Use:     "internal-thaw --after DURATION --pid PID MOUNT",
		Short:   "Thaw a filesystem at the end of a plan's freeze window (started by fsfreeze steps)",
		Hidden:  true,
		Args:    cobra.ExactArgs(1),
		Example: `  rewind internal-thaw --after 30s --pid 4242 /srv`,
		RunE: func(cmd *cobra.Command, args []string) error {
			why, err := fsfreeze.Watch(cmd.Context(), args[0], after, pid)
			if why != "" {
				g.log.Warn("thawed by the watchdog", "mount", args[0], "why", why, "err", err)
			}
			return err
		},
	}
	cmd.Flags().DurationVar(&after, "after", 30*time.Second, "thaw when this `duration` has passed")
	cmd.Flags().IntVar(&pid, "pid", 0, "thaw at once when the process `PID` that froze it is gone")
	return cmd
}
