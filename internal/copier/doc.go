// Package copier copies snapshots from one repository into another, for
// offsite copies (`rewind copy`). docs/COPY.md describes it for users.
//
// # What is transferred
//
// A snapshot is copied by walking its trees in the source and storing in
// the destination every blob the destination lacks. Blobs are read and
// verified with the source's keys (repository.LoadBlob) and compressed and
// sealed again with the destination's: nothing sealed by one repository is
// stored in the other.
//
// How a blob is named in the destination depends on the two ID keys
// (docs/FORMAT.md §3):
//
//   - ModeByID: the repositories share their ID key, which `rewind init
//     --copy-chunker-params-from` arranges. A blob has the same ID in both,
//     so the destination's index says at once whether it holds it, and
//     only the missing blobs are read from the source. Tree blobs are
//     copied unchanged.
//   - ModeRehash: the ID keys differ. Every data blob of the snapshot is
//     read from the source and hashed with the destination's ID key, then
//     stored unless the destination holds that ID; the trees are rewritten
//     with the new IDs, one destination tree blob per source tree blob
//     (fields of a newer format that this version does not know are lost
//     in the rewritten listings). Blobs are still uploaded only when
//     missing, but everything is downloaded.
//
// # Order of writes
//
// The destination gets its blobs first; then Flush stores the last packs
// and the index files listing them; then the snapshot file, whose
// CopiedFrom names the source snapshot. A copy that stops before the end
// (an error, a kill) therefore leaves no snapshot, only packs, which the
// next copy or backup indexes (repository.IndexUnindexedPacks) and reuses.
// A tree blob that the destination holds is walked all the same, since a
// killed copy may have stored a tree before the data below it.
//
// Snapshots are copied one at a time, each completely stored before the
// next starts, and a snapshot already copied (a destination snapshot has
// CopiedFrom equal to its ID) is skipped, so that running the same copy
// again transfers nothing.
package copier
