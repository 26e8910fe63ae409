// Package repair salvages snapshots that reference lost data.
//
// A blob is lost when the index does not list it, when the index places it
// in a pack that is no longer stored, or (with Options.ReadData) when its
// stored bytes fail to decrypt or to hash to its ID. A tree blob that cannot
// be loaded or decoded is lost as well, whatever the options.
//
// Snapshots walks each snapshot and writes, for every damaged one, a new
// snapshot that keeps everything still intact:
//
//   - a file whose content (a data blob, or a blob holding its chunk list)
//     is lost is left out and named;
//   - a directory whose listing is lost keeps its own node (name and
//     metadata) with an empty listing, and is named; when only some blobs of
//     a long listing are lost, the entries of the others are kept;
//   - everything else is kept as it was, and directories with nothing lost
//     below them keep their tree blobs: only the directories on the way from
//     the root to a loss are written again, so a repair stores little.
//
// The new snapshot has the damaged one's time, host, paths and tags, the tag
// "repaired", and Original naming the damaged snapshot, which is left as it
// is. A damage record (Record, in the damaged/ namespace) names both and
// every loss; it is what makes a second run leave the snapshot alone, and
// what `rewind check` uses to say a damaged snapshot has been repaired.
//
// # Crash safety
//
// Everything is written in this order: the new tree blobs, then Flush (the
// packs, then an index file listing them), then each new snapshot, then its
// damage record, and only then (with Options.Forget) the damaged snapshot is
// removed. A crash therefore leaves one of:
//
//   - new packs, indexed or not, that no snapshot uses: harmless, and a
//     second run finds its tree blobs stored already;
//   - a repaired snapshot without a damage record: the next run finds it by
//     its Original field, writes the missing record for it and does not
//     write a second snapshot;
//   - a record, with the damaged snapshot still present: the next run
//     reports the snapshot as already repaired (and removes it with Forget).
//
// Nothing is ever removed before the snapshot and record that replace it are
// stored, and the damaged snapshot is never rewritten, so no step loses
// information the repository held before.
package repair
