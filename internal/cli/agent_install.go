package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rewind-backup/rewind/internal/agent"
	"github.com/rewind-backup/rewind/internal/systemd"
)

// AgentUnitName is the systemd unit `rewind agent install` writes.
const AgentUnitName = "rewind-agent.service"

func newAgentInstallCmd(g *globals) *cobra.Command {
	var config, unitPath string
	var printOnly, noStart bool
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install the agent as a systemd service and start it",
		Long: `Write the systemd unit ` + AgentUnitName + `, which runs this rewind binary as
"rewind agent --config PLAN", then reload systemd and enable and start the
unit. The plan is checked first: an invalid plan is not installed.

--print prints the unit and changes nothing. Without a running systemd
(in most containers) the unit is written only with --no-start, which also
leaves the unit disabled and stopped where systemd runs.`,
		Example: `  rewind agent install
  rewind agent install --config /etc/rewind/web1.yaml
  rewind agent install --print
  rewind agent install --no-start`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := filepath.Abs(planPath(config))
			if err != nil {
				return err
			}
			bin, err := selfBin()
			if err != nil {
				return err
			}
			unit := agent.Unit(bin, path)
			if printOnly {
				g.ui.Printf("%s", unit)
				return nil
			}
			if _, err := loadAgentPlan(path); err != nil {
				return fmt.Errorf("not installing the agent: %w", err)
			}
			running := systemd.Running()
			if !running && !noStart {
				return fmt.Errorf("%w: the unit was not written; give --no-start to write %s anyway, or --print to see it", systemd.ErrNoSystemd, unitPath)
			}
			if err := agent.WriteFileAtomic(unitPath, []byte(unit)); err != nil {
				return err
			}
			if err := os.Chmod(unitPath, 0o644); err != nil {
				return err
			}
			g.ui.Printf("wrote %s\n", unitPath)
			if !running {
				g.ui.Printf("systemd is not running here: enable it with `systemctl enable --now %s` where it runs\n", AgentUnitName)
				return nil
			}
			m := systemd.Manager{}
			if err := m.DaemonReload(cmd.Context()); err != nil {
				return err
			}
			if noStart {
				g.ui.Printf("not started (--no-start): `systemctl enable --now %s` starts it\n", AgentUnitName)
				return nil
			}
			if err := m.Enable(cmd.Context(), AgentUnitName, true); err != nil {
				return err
			}
			g.ui.Printf("enabled and started %s; `rewind status` shows its jobs, `journalctl -u %s` its log\n",
				AgentUnitName, strings.TrimSuffix(AgentUnitName, ".service"))
			return nil
		},
	}
	addConfigFlag(cmd, &config)
	f := cmd.Flags()
	f.StringVar(&unitPath, "unit-path", "/etc/systemd/system/"+AgentUnitName, "write the unit to `file`")
	f.BoolVar(&printOnly, "print", false, "print the unit and change nothing")
	f.BoolVar(&noStart, "no-start", false, "write the unit but do not enable or start it (also without systemd)")
	return cmd
}
