package s3

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/rewind-backup/rewind/internal/backend"
)

// ObjectLock returns the repository's object lock setting: the one given
// to Create, or the one Open read from the config object. The zero value
// means object lock is off.
func (b *Backend) ObjectLock() ObjectLock { return b.lock }

// Retention returns the retain-until date of the current version of h,
// with one GetObjectRetention request; the zero time when it has none.
func (b *Backend) Retention(ctx context.Context, h backend.Handle) (time.Time, error) {
	if err := b.check(ctx, "get retention of", h); err != nil {
		return time.Time{}, err
	}
	_, until, err := b.client.GetObjectRetention(ctx, b.cfg.Bucket, b.key(h), "")
	switch {
	case isCode(err, "NoSuchObjectLockConfiguration"):
		return time.Time{}, nil
	case err != nil:
		return time.Time{}, b.wrapErr("get retention of", h.String(), err)
	case until == nil:
		return time.Time{}, nil
	}
	return *until, nil
}

// ExtendRetention sets the retain-until date of the current version of h
// to until, in the repository's mode, with one PutObjectRetention request.
// The caller makes sure until is later than the date the version has: S3
// refuses to shorten a COMPLIANCE retention.
func (b *Backend) ExtendRetention(ctx context.Context, h backend.Handle, until time.Time) error {
	if err := b.check(ctx, "extend retention of", h); err != nil {
		return err
	}
	if b.view != nil {
		return fmt.Errorf("extend retention of %s: %w", h, errViewReadOnly)
	}
	if !b.lock.Enabled() {
		return backend.Permanent(errors.New("extend retention: the repository has no object lock"))
	}
	mode := minio.RetentionMode(b.lock.Mode)
	until = until.UTC().Truncate(time.Second).Add(time.Second)
	err := b.client.PutObjectRetention(ctx, b.cfg.Bucket, b.key(h), minio.PutObjectRetentionOptions{Mode: &mode, RetainUntilDate: &until})
	if err != nil {
		return b.wrapErr("extend retention of", h.String(), err)
	}
	return nil
}
