// Package prune deletes the data that no snapshot references, without
// blocking or breaking backups that run at the same time.
//
// It is a two-phase, fenced protocol (docs/FORMAT.md §12). The first phase
// condemns packs in a mark and drops them from the index; the second, in
// the same or a later prune, deletes them once every lock that was held
// when the mark was made is gone, after reviving any pack that a snapshot
// stored meanwhile references. Backups never wait for prune, and prune
// never deletes a blob that a backup which read the old index may use.
package prune
