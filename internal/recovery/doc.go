// Package recovery rebuilds a machine from a snapshot and the inventory
// recorded with it: bare-metal recovery (`rewind recover`), the same onto
// a new VM disk (`rewind export --vm`), and the restore half of a drill.
//
// Recover runs in phases, each timed in the Report:
//
//	plan       MakePlan maps the inventory's disks onto the target disks
//	           (pure: --dry-run stops after it and prints the Plan)
//	partition  the partition tables, with the same types, UUIDs and labels
//	mkfs       the filesystems and swap areas, with their UUIDs, labels
//	           and features; btrfs subvolumes
//	restore    the snapshot's files into the new filesystems, mounted as
//	           the recorded system mounts them
//	bootloader fstab, crypttab and boot configuration fixed where a UUID
//	           or device changed; the initramfs regenerated in a chroot;
//	           GRUB installed for the boot mode
//
// docs/RECOVERY.md is the guide for administrators; this package's
// contract is the types in plan.go and report.go.
package recovery
