// Package s3 stores a repository in a bucket of an S3-compatible object
// store (AWS S3, MinIO, Ceph RGW), through minio-go.
//
// # Layout
//
// Under the key prefix given in the address (none: the bucket root), the
// keys are named as the local backend's files:
//
//	PREFIX/config
//	PREFIX/keys/<name>
//	PREFIX/data/<xx>/<name>      xx: the first two hex digits of name
//	PREFIX/index/<name>
//	PREFIX/snapshots/<name>
//	PREFIX/locks/<name>
//	PREFIX/gc/<name>, holds/, policy/, damaged/
//
// There are no folders to create: Create only makes sure the bucket exists
// (creating it when it is missing and the credentials allow it) and holds
// no config under the prefix.
//
// # Writes
//
// An object becomes visible whole or not at all: a single PUT is atomic, and
// a multipart upload becomes visible only when CompleteMultipartUpload
// succeeds. Objects up to Config.MultipartThreshold (64 MiB by default, so
// every pack of the default 16 MiB size) go up in one PUT; larger ones in
// parts of Config.PartSize (16 MiB), Config.PartUploads (4) at a time.
// Content is streamed from the reader in one pass; a reader that yields
// fewer or more bytes than its Length fails the request before the last
// byte is sent, so nothing is stored.
//
// Save never overwrites. The PUT (or the CompleteMultipartUpload) carries
// "If-None-Match: *", which AWS S3 (since 2024), MinIO and Ceph RGW honour
// atomically: when the key exists the server answers 412 Precondition
// Failed, and Save then reads the stored object and compares it with the
// content it was given (equal: success; different: ErrExists). AWS may
// answer 409 ConditionalRequestConflict to one of two racing writers;
// that error is transient and a retry ends in the 412 path.
//
// Servers that reject the header with 501 Not Implemented, or setting
// Config.NoConditionalWrites, switch Save to a fallback: a HEAD, then an
// unconditional PUT. It has a race: two clients saving the same new key at
// the same moment both see it missing and the later PUT replaces the
// earlier one. rewind names packs, indexes and snapshots by the hash of
// their content, so two writers of one name write the same bytes and the
// race loses nothing; it only matters for a file written with different
// content under one name by two clients at once, which the repository
// format avoids.
//
// # Reads
//
// Load asks for exactly the range it needs (a Range header) and checks
// that the answer carries that many bytes: a range past the end of the
// object yields io.ErrUnexpectedEOF, marked Permanent, without calling fn.
//
// # Errors
//
// 404 NoSuchKey maps to backend.ErrNotExist. Other 4xx answers (403 access
// denied, 400 bad request, a missing bucket) are marked backend.Permanent,
// except the ones S3 documents as transient (400 RequestTimeout and
// IncompleteBody, 409 conflicts, 429). 5xx answers and network errors are
// left for the retry wrapper. minio-go's own retries are turned off: the
// retry wrapper (package backend/retry) owns retrying, and logs it.
//
// S3 deletes of a missing key succeed, so Remove asks with a HEAD first to
// report ErrNotExist as the contract wants; a removal racing with another
// is not detected.
//
// # Object lock
//
// A repository created with Config.ObjectLock (lock.go, docs/OBJECT-LOCK.md)
// uploads config, keys, packs, index files and snapshots with an S3 Object
// Lock retention of the setting's Retention plus Slack, and a Content-MD5;
// the setting is recorded in the config object's metadata, which Open reads
// with the HEAD it makes anyway. Remove deletes a pack's version, and fails
// with a *LockedError (backend.ErrLocked, Permanent) while it is retained;
// other files get a delete marker, below which their version stays.
// Retention and ExtendRetention (retention.go) read and extend a file's
// date. With Config.VersionsAt the backend is a read-only view of the
// repository at that time, made from the bucket's object versions, and
// Recover makes that state current again (versions.go).
package s3
