package repository

import "errors"

// Errors that the CLI maps to exit codes and advice.
var (
	// ErrNoRepository: there is no repository at the given location.
	ErrNoRepository = errors.New("no repository at this location")
	// ErrNewerFormat: the repository was written by a newer rewind.
	ErrNewerFormat = errors.New("repository format is newer than this rewind supports")
	// ErrRepositoryExists: init found a repository at the location.
	ErrRepositoryExists = errors.New("a repository already exists there")
	// ErrWrongPassword: no key file opens with the given password.
	ErrWrongPassword = errors.New("wrong password or no key file matches")
	// ErrBlobNotFound: the index does not list a blob.
	ErrBlobNotFound = errors.New("blob not found in index")
	// ErrCorrupt is wrapped by errors about stored data that fails to
	// decrypt, decompress or hash to its ID.
	ErrCorrupt = errors.New("stored data is corrupt")
)
