// Package testutil holds helpers shared by tests: a real ext4 filesystem
// on a loop device, and checks for root and for external tools that skip a
// test where it cannot run, or fail it under CI=true, where the
// environment is expected to provide everything.
package testutil
