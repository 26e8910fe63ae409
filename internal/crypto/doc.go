// Package crypto holds a repository's keys and the cryptography of its
// format: authenticated encryption of stored objects, blob and file IDs,
// and the password-protected key files. It composes well-known primitives
// from golang.org/x/crypto and github.com/zeebo/blake3; nothing here is a
// new cipher. docs/FORMAT.md refers to this comment for the exact layouts.
//
// # Master key
//
// A repository has one master key, made of three independent 32-byte
// random keys. Its serialized form, the key material, is their
// concatenation (MaterialSize = 96 bytes):
//
//	offset  0: encryption key  (XChaCha20-Poly1305 key for all objects)
//	offset 32: ID key          (BLAKE3 key for blob IDs)
//	offset 64: chunker secret  (derives the chunker's gear table)
//
// The master key never changes; changing a password only re-wraps it.
//
// # Encrypted objects
//
// Every stored object (blob, pack header, index, snapshot, ...) is sealed
// with XChaCha20-Poly1305 under the encryption key, with no associated
// data, and laid out as
//
//	nonce (24 bytes) || ciphertext (len(plaintext) bytes) || tag (16 bytes)
//
// so a sealed object is Overhead = 40 bytes longer than its plaintext. The
// nonce is 24 fresh random bytes from crypto/rand for every object. With
// 192-bit random nonces, the chance that any two of 2^64 objects share a
// nonce is about 2^-65, so nonces need no counter or coordination between
// processes or hosts. Open rejects any change to any byte, and any input
// shorter than 40 bytes, with ErrUnauthenticated.
//
// # IDs
//
// A blob's ID is the 32-byte BLAKE3 hash of its plaintext in keyed mode,
// with the ID key as key (BlobID). Keying hides which known plaintexts a
// repository holds from someone who can list IDs but has no key. A stored
// file (pack, index, snapshot, key file) is named by the unkeyed 32-byte
// BLAKE3 hash of its stored bytes (FileID), so its integrity can be
// checked without any key.
//
// # Key files
//
// A key file lets one password open the master key. It is JSON, for
// example (base64 is standard encoding with padding):
//
//	{
//	  "version": 1,
//	  "kdf": "argon2id",
//	  "params": {"time": 1, "memory_kib": 65536, "threads": 4},
//	  "salt": "<32 bytes, base64: 44 characters>",
//	  "created": "2025-06-01T12:00:00.123456789Z",
//	  "hostname": "laptop",
//	  "username": "alice",
//	  "data": "<136 bytes, base64: 184 characters>"
//	}
//
// The wrapping key is argon2id (RFC 9106, version 0x13) of the password
// with the salt, passes = time, memory = memory_kib KiB, parallelism =
// threads, and a 32-byte output. data is the 96-byte key material sealed
// with XChaCha20-Poly1305 under the wrapping key, in the object layout
// above (24 + 96 + 16 = 136 bytes). created is RFC 3339 time; hostname
// and username say where the key file was made. Those three are for
// people only and are not authenticated.
//
// ParseKeyFile accepts version 1 only and rejects unknown fields, trailing
// data, a kdf other than "argon2id", a salt or data of the wrong length,
// and parameters a machine should not be asked to run: time outside
// 1..100, threads 0, memory below 8 KiB per thread or above 4 GiB, or
// time × memory above 16 GiB. A wrong password and a damaged data field
// both make Unwrap fail with ErrWrongPassword: authentication cannot
// tell them apart.
//
// New key files use DefaultKDFParams (see its comment for the choice and
// its cost); TestKDFParams is a fast setting for tests only.
package crypto
