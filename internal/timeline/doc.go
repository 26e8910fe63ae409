// Package timeline treats the snapshots of a host as a history of its
// files, the view behind continuous protection (docs/CONTINUOUS.md):
//
//   - Moments: what a user may write for "when" (RFC 3339, a local
//     "2026-11-22 10:31:05", a relative "-15m", or a label made with
//     `rewind mark`), resolved to the latest instant the moment covers.
//   - Selection: the snapshots that cover a path, and the one that shows
//     it at a moment (the newest taken at or before it); for a whole host
//     at a moment, every path it backed up with its own such snapshot
//     (AtEvery).
//   - Versions: consecutive snapshots in which a path did not change,
//     folded into one version, by comparing the stored content IDs and
//     directory trees, never file data.
//   - Comparison with the live filesystem and unified text diffs, for
//     `rewind diff PATH --at`.
//   - Retention: the default policy for thousands of snapshots a day
//     (ContinuousPolicy) and the labels that keep snapshots beyond any
//     policy (LabelKeeps, Apply), for `forget --continuous` and the watch
//     daemon.
//
// The package reads repositories and the filesystem but changes neither:
// restoring and removing are left to the restorer and the CLI.
package timeline
