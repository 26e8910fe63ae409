// Package testutil holds helpers shared by tests: real ext4, XFS and btrfs
// filesystems on loop devices (LoopFS and its shorthands Ext4 and XFS),
// servers a test starts and stops (StartMinIO, StartSMTP),
// machines booted under QEMU (the instant tests' guest: GuestDisk,
// BootGuest; the recovery tests' server: BuildServerDisk, BootServer,
// AttachServer),
// and checks for root and for external tools that skip a test where it
// cannot run, or fail it under CI=true, where the environment is expected
// to provide everything.
package testutil
