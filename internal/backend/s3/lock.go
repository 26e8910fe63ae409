package s3

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/rewind-backup/rewind/internal/backend"
)

// The object lock modes (S3 retention modes).
const (
	// ModeCompliance: nobody, the bucket owner and the root user included,
	// can delete a locked version or shorten its retention before it ends.
	ModeCompliance = "COMPLIANCE"
	// ModeGovernance: credentials with s3:BypassGovernanceRetention can.
	ModeGovernance = "GOVERNANCE"
)

// lockMetaKey is the user metadata of the config object that records the
// repository's object lock (x-amz-meta-rewind-object-lock), as
// "MODE SECONDS". It tells later writers to lock what they write; it is
// not trusted for safety (anyone who can write the bucket can write a new
// config version without it), which rests on the versions already locked.
const lockMetaKey = "Rewind-Object-Lock"

// ObjectLock is a repository's S3 Object Lock setting: every object a
// restore needs is written with a retention of Retention plus Slack, and
// `rewind retention extend` keeps what retained snapshots reference locked
// until Retention after each snapshot was taken. See docs/OBJECT-LOCK.md.
type ObjectLock struct {
	// Retention is how long each snapshot stays immutable after it is
	// taken; 0 means object lock is off.
	Retention time.Duration
	// Mode is ModeCompliance or ModeGovernance.
	Mode string
}

// Enabled reports whether the repository locks what it writes.
func (l ObjectLock) Enabled() bool { return l.Retention > 0 }

// Slack is the time added beyond what a lock must cover: it absorbs clock
// differences between client and server, and makes extensions coarse (an
// object is extended once per Slack, not on every backup). It is a quarter
// of Retention.
func (l ObjectLock) Slack() time.Duration { return l.Retention / 4 }

// String describes the setting for people, e.g. "COMPLIANCE, 720h0m0s".
func (l ObjectLock) String() string {
	if !l.Enabled() {
		return "off"
	}
	return fmt.Sprintf("%s, %s", l.Mode, l.Retention)
}

// Check reports a setting that cannot be used.
func (l ObjectLock) Check() error {
	if l.Retention < time.Second || l.Retention%time.Second != 0 {
		return fmt.Errorf("object lock retention %s: want a whole number of seconds, at least 1s", l.Retention)
	}
	if l.Mode != ModeCompliance && l.Mode != ModeGovernance {
		return fmt.Errorf("object lock mode %q: want %s or %s", l.Mode, ModeCompliance, ModeGovernance)
	}
	return nil
}

func (l ObjectLock) meta() string {
	return l.Mode + " " + strconv.FormatInt(int64(l.Retention/time.Second), 10)
}

// parseLockMeta reads the config object's user metadata; a missing entry
// means object lock is off.
func parseLockMeta(meta map[string]string) (ObjectLock, error) {
	var v string
	for k, val := range meta {
		if strings.EqualFold(k, lockMetaKey) || strings.EqualFold(k, "X-Amz-Meta-"+lockMetaKey) {
			v = val
		}
	}
	if v == "" {
		return ObjectLock{}, nil
	}
	mode, secs, _ := strings.Cut(strings.TrimSpace(v), " ")
	n, err := strconv.ParseInt(secs, 10, 64)
	l := ObjectLock{Mode: strings.ToUpper(mode), Retention: time.Duration(n) * time.Second}
	if err == nil && n > 0 && n < int64(1<<62/time.Second) {
		err = l.Check()
	} else if err == nil {
		err = errors.New("retention out of range")
	}
	if err != nil {
		return ObjectLock{}, fmt.Errorf("config object: unreadable object lock setting %q: %w", v, err)
	}
	return l, nil
}

// lockedType reports whether files of type t are written with a retention:
// the ones a restore needs. Locks, prune marks, holds, policy, damage
// records and labels are not, so that rewind can remove them as it always
// does; nor are runbooks, which rewind runbook replaces (keeping the newest
// of each host) and can always write again from a locked inventory.
func lockedType(t backend.FileType) bool {
	switch t {
	case backend.ConfigFile, backend.KeyFile, backend.PackFile, backend.IndexFile, backend.SnapshotFile, backend.InventoryFile:
		return true
	}
	return false
}

// now returns the time of the backend's clock.
func (b *Backend) now() time.Time {
	if b.cfg.Now != nil {
		return b.cfg.Now()
	}
	return time.Now()
}

// retainUntil is the retention a file of type t written now gets; zero
// when it gets none.
func (b *Backend) retainUntil(t backend.FileType) time.Time {
	if !b.lock.Enabled() || !lockedType(t) {
		return time.Time{}
	}
	return b.now().Add(b.lock.Retention + b.lock.Slack()).UTC().Truncate(time.Second).Add(time.Second)
}

// setRetention adds the object lock headers for a file of type t to opts.
func (b *Backend) setRetention(opts *minio.PutObjectOptions, t backend.FileType) {
	until := b.retainUntil(t)
	if until.IsZero() {
		return
	}
	opts.Mode = minio.RetentionMode(b.lock.Mode)
	opts.RetainUntilDate = until
	if t == backend.ConfigFile {
		opts.UserMetadata = map[string]string{lockMetaKey: b.lock.meta()}
	}
}

// contentMD5 returns the base64 MD5 of the size bytes of rd, which it
// reads and then rewinds. AWS requires a Content-MD5 (or checksum) header
// on every upload that carries a retention.
func contentMD5(rd io.Reader, size int64) (string, error) {
	h := md5.New()
	n, err := io.Copy(h, io.LimitReader(rd, size))
	if err != nil {
		return "", fmt.Errorf("read content: %w", err)
	}
	if n != size {
		return "", backend.Permanent(fmt.Errorf("reader yielded %d bytes, its length is %d", n, size))
	}
	return base64.StdEncoding.EncodeToString(h.Sum(nil)), nil
}

// prepareLock makes sure the bucket can hold locked objects: a missing
// bucket is created with object locking (which turns versioning on); an
// existing one must have it. No default retention is set on the bucket
// (docs/OBJECT-LOCK.md says why).
func (b *Backend) prepareLock(ctx context.Context, exists bool) error {
	if err := b.lock.Check(); err != nil {
		return backend.Permanent(err)
	}
	if !exists {
		err := b.client.MakeBucket(ctx, b.cfg.Bucket, minio.MakeBucketOptions{Region: b.cfg.Region, ObjectLocking: true})
		if err != nil && !isCode(err, "BucketAlreadyOwnedByYou") {
			return backend.Permanent(fmt.Errorf("create repository %s: bucket %s does not exist and could not be created with object lock: %w",
				b.Location(), b.cfg.Bucket, b.wrapErr("create bucket", b.cfg.Bucket, err)))
		}
		b.log.Info("created bucket with object lock", "bucket", b.cfg.Bucket, "endpoint", b.cfg.Endpoint)
	}
	enabled, mode, validity, unit, err := b.client.GetObjectLockConfig(ctx, b.cfg.Bucket)
	switch {
	case isCode(err, "ObjectLockConfigurationNotFoundError"), err == nil && enabled != "Enabled":
		return backend.Permanent(fmt.Errorf("create repository %s: bucket %s does not have S3 Object Lock enabled; "+
			"create a new bucket with it (rewind init creates a missing one so; mc mb --with-lock; on AWS enable Object Lock in the bucket's properties)",
			b.Location(), b.cfg.Bucket))
	case err != nil:
		return b.wrapErr("create repository: read the object lock configuration of bucket", b.cfg.Bucket, err)
	}
	if mode != nil && validity != nil && unit != nil {
		b.log.Warn("the bucket has a default retention: it also locks rewind's lock files and prune marks, and any attacker's overwrites, for that long",
			"bucket", b.cfg.Bucket, "mode", *mode, "validity", fmt.Sprintf("%d %s", *validity, *unit))
	}
	return nil
}

// LockedError is the error of a Remove that object lock refused. It wraps
// backend.ErrLocked and is Permanent.
type LockedError struct {
	Handle backend.Handle
	// Mode is the retention mode, or "legal hold".
	Mode string
	// Until is the end of the retention; zero under a legal hold.
	Until time.Time
}

func (e *LockedError) Error() string {
	if e.Until.IsZero() {
		return fmt.Sprintf("remove %s: kept by an S3 object lock (%s): %v", e.Handle, e.Mode, backend.ErrLocked)
	}
	return fmt.Sprintf("remove %s: kept by an S3 object lock (%s) until %s: %v", e.Handle, e.Mode, e.Until.UTC().Format(time.RFC3339), backend.ErrLocked)
}

func (e *LockedError) Unwrap() error { return backend.ErrLocked }

// RetainUntil returns the end of the retention (zero: a legal hold).
func (e *LockedError) RetainUntil() time.Time { return e.Until }

// objectRetention reads the retention and legal hold that a HEAD or GET
// answer shows (when the credentials may read them).
func objectRetention(h http.Header) (mode string, until time.Time, hold bool) {
	if h == nil {
		return "", time.Time{}, false
	}
	mode = h.Get("X-Amz-Object-Lock-Mode")
	if s := h.Get("X-Amz-Object-Lock-Retain-Until-Date"); s != "" {
		if t, err := time.Parse(time.RFC3339, s); err == nil {
			until = t
		}
	}
	hold = strings.EqualFold(h.Get("X-Amz-Object-Lock-Legal-Hold"), "ON")
	return mode, until, hold
}

// removeLocked removes the current version of a pack in a locked
// repository, so that its space is freed: a DELETE of the version, where
// a plain DELETE would only hide it behind a delete marker. A version
// still under retention is not deleted: the error is a *LockedError.
func (b *Backend) removeLocked(ctx context.Context, h backend.Handle) error {
	key := b.key(h)
	info, err := b.client.StatObject(ctx, b.cfg.Bucket, key, minio.StatObjectOptions{})
	if err != nil {
		err = b.wrapErr("remove", h.String(), err)
		if backend.IsNotExist(err) {
			return backend.Wrap("remove", h.String(), backend.ErrNotExist)
		}
		return err
	}
	hdr := info.Headers
	if hdr == nil {
		hdr = info.Metadata
	}
	mode, until, hold := objectRetention(hdr)
	now := b.now()
	switch {
	case hold:
		return backend.Permanent(&LockedError{Handle: h, Mode: "legal hold"})
	case until.After(now):
		return backend.Permanent(&LockedError{Handle: h, Mode: mode, Until: until})
	case info.VersionID == "" || info.VersionID == "null":
		return b.removePlain(ctx, h)
	}
	err = b.client.RemoveObject(ctx, b.cfg.Bucket, key, minio.RemoveObjectOptions{VersionID: info.VersionID})
	if err != nil {
		// The HEAD may not show a retention the server enforces (no
		// s3:GetObjectRetention permission), or the server's clock may
		// be behind ours: ask it. AWS answers AccessDenied to the DELETE
		// of a locked version, MinIO InvalidRequest.
		denied := isCode(err, "AccessDenied")
		if m, u, rerr := b.client.GetObjectRetention(ctx, b.cfg.Bucket, key, info.VersionID); rerr == nil && u != nil && (u.After(now) || !denied && isStatus(err, http.StatusBadRequest)) {
			md := ""
			if m != nil {
				md = string(*m)
			}
			return backend.Permanent(&LockedError{Handle: h, Mode: md, Until: *u})
		}
		if !denied {
			return b.wrapErr("remove", h.String(), err)
		}
		// Credentials that may not delete versions: hide the pack
		// behind a delete marker instead; a lifecycle rule frees it.
		if !b.warnedVersionDelete.Swap(true) {
			b.log.Warn("the credentials may not delete object versions (s3:DeleteObjectVersion); removed packs are hidden behind delete markers and keep their space until a lifecycle rule expires noncurrent versions",
				"bucket", b.cfg.Bucket, "err", err)
		}
		return b.removePlain(ctx, h)
	}
	// An older version (an overwrite, say) may have become current: hide
	// it.
	if _, err := b.client.StatObject(ctx, b.cfg.Bucket, key, minio.StatObjectOptions{}); err == nil {
		if err := b.client.RemoveObject(ctx, b.cfg.Bucket, key, minio.RemoveObjectOptions{}); err != nil {
			return b.wrapErr("remove", h.String(), err)
		}
	}
	return nil
}

// removePlain sends a plain DELETE of h's key, after a HEAD that reports
// a missing file. On a versioned bucket the DELETE adds a delete marker.
func (b *Backend) removePlain(ctx context.Context, h backend.Handle) error {
	if _, err := b.Stat(ctx, h); err != nil {
		if backend.IsNotExist(err) {
			return backend.Wrap("remove", h.String(), backend.ErrNotExist)
		}
		return fmt.Errorf("remove: %w", err)
	}
	if err := b.client.RemoveObject(ctx, b.cfg.Bucket, b.key(h), minio.RemoveObjectOptions{}); err != nil {
		return b.wrapErr("remove", h.String(), err)
	}
	return nil
}

// readLockSetting checks that the config object exists, with a HEAD that
// also reads the repository's object lock setting from its metadata.
func (b *Backend) readLockSetting(ctx context.Context) error {
	h := backend.Handle{Type: backend.ConfigFile}
	if err := b.check(ctx, "stat", h); err != nil {
		return err
	}
	var opts minio.StatObjectOptions
	if b.view != nil {
		v, err := b.view.version(ctx, b, h)
		if err != nil {
			return backend.Wrap("stat", h.String(), err)
		}
		opts.VersionID = v.id
	}
	info, err := b.client.StatObject(ctx, b.cfg.Bucket, b.key(h), opts)
	if err != nil {
		return b.wrapErr("stat", h.String(), err)
	}
	l, err := parseLockMeta(info.UserMetadata)
	if err != nil {
		return backend.Permanent(err)
	}
	b.lock = l
	return nil
}
