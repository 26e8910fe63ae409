// Package inventory records what a machine is made of: its disks and
// partition tables, filesystems, RAID, LUKS and LVM layers, boot mode and
// boot loader, kernel, network, packages, enabled units, users, groups
// and crontabs. Every file backup stores one such document beside its
// snapshot (the inventory/ folder, docs/FORMAT.md), and bare-metal
// recovery rebuilds disks from it, so the disk part is exact to the
// sector.
//
// Collect reads the running system through Sources: file-system prefixes
// (the root, /sys, /proc) and a Runner for the external programs (sfdisk,
// blkid, dumpe2fs, ip, dpkg-query, ...), each called with an argument
// list and a timeout. A missing program or an unreadable source becomes a
// line of Document.Warnings, never an error: the backup goes on.
//
// The document leaves out what changes while nothing is changed (free
// space, counters, lifetimes, generations), so that two collections of an
// unchanged machine are equal (Document.SameContent) and a backup reuses
// the stored file instead of writing a new one.
package inventory
