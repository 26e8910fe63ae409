// Package policy keeps the repository policy: settings that every rewind
// client obeys and that only the holder of the repository's admin key can
// change. Today the policy has one setting, the minimum retention: forget
// removes no snapshot younger than it.
//
// A policy file lives in the policy/ folder, sealed with the master key and
// named after its stored bytes like a snapshot. It carries a sequence
// number, the minimum retention, the admin public key (Ed25519), the time
// it was made, the file name of the policy it replaces, and an Ed25519
// signature over a fixed text encoding of all of those and the repository
// ID (SignedBytes). Policy 1 is signed by its own key: whoever sets the
// first policy chooses the admin key (trust on first use). Every later
// policy N is signed by the admin key named in policy N-1, which it names
// by file, so the files form a chain that only the admin key can extend.
//
// Resolve finds the chain: files that fail to decrypt or decode, carry a
// bad signature, or do not link to a valid predecessor are ignored and
// reported; two valid files with the same sequence number (the admin key
// signed two successors of one policy) are a fork that Resolve refuses to
// choose from. The effective policy is the last link of the chain.
//
// This is a guard on the client side, against mistakes: a client holding
// the repository password can still delete policy files and snapshot files
// with ordinary file operations. Object lock on the storage and the backup
// server enforce the policy against a hostile client (future work; see
// docs/RETENTION.md). The on-disk format is in docs/FORMAT.md §13 (drafted
// in docs/draft-holds-policy.md).
//
// The admin key is kept outside the repository in a PEM file (PKCS #8,
// mode 0600), see ReadKeyFile.
package policy
