package cli

import (
	"fmt"
	"runtime"

	"github.com/rewind-backup/rewind/internal/repository"
	"github.com/spf13/cobra"
)

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the version of rewind",
		Example: "  rewind version\n  rewind version --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			jsonOut, _ := cmd.Flags().GetBool("json")
			if jsonOut {
				return writeJSON(cmd, map[string]any{"version": Version, "go": runtime.Version(),
					"os": runtime.GOOS, "arch": runtime.GOARCH, "format_version": repository.FormatVersion})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rewind %s (repository format %d) compiled with %s on %s/%s\n",
				Version, repository.FormatVersion, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}
