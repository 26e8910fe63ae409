package recovery

import (
	"time"

	"github.com/rewind-backup/rewind/internal/event"
)

// Phase names, in the order they run.
const (
	PhasePlan       = "plan"
	PhasePartition  = "partition"
	PhaseMkfs       = "mkfs"
	PhaseRestore    = "restore"
	PhaseBootloader = "bootloader"
)

// Report is what one recover did. It is stored in the repository as the
// report of an event (kind "recover", docs/FORMAT.md §16) and printed by
// `rewind recover --json`.
type Report struct {
	Host     string        `json:"hostname"`
	Snapshot string        `json:"snapshot_id"`
	Start    time.Time     `json:"start"`
	End      time.Time     `json:"end"`
	Plan     *Plan         `json:"plan"`
	Phases   []event.Phase `json:"phases"`
	// Fixed lists the configuration files changed so the system boots
	// on its new disks (fstab, crypttab, grub.cfg), with what changed.
	Fixed    []string `json:"fixed"`
	Warnings []string `json:"warnings"`
	// Files and Bytes are what the restore phase wrote.
	Files int64 `json:"files_restored"`
	Bytes int64 `json:"bytes_restored"`
	// DryRun: only the plan was made; nothing was written.
	DryRun bool `json:"dry_run,omitempty"`
}
