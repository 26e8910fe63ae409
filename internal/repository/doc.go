// Package repository turns a backend into an encrypted, deduplicating,
// compressed store of blobs. It owns the config, the key files, the packer
// that groups blobs into packs, and the in-memory index.
//
// Writing follows a fixed order that keeps the repository consistent at
// every moment (docs/FORMAT.md, "Write order"): a pack is stored before the
// index file that lists it, and an index file is stored before any snapshot
// whose trees reference its blobs. A crash at any point leaves at worst
// packs that no index lists, which the next backup ignores and a repair or
// prune can collect.
package repository
