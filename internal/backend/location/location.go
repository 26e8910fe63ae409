// Package location parses repository addresses, such as "/srv/backup",
// "local:/srv/backup", "s3:https://minio:9000/bucket/prefix" or
// "rest:https://host:8000/repo", and opens the backend an address names.
// Every provider is listed in the one switch of Open and Create: there is
// no registration at init time.
package location

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
)

// The schemes of the providers.
const (
	Local = "local"
	S3    = "s3"
	REST  = "rest"
)

// ErrUnknownScheme means an address starts with a scheme that names no
// provider.
var ErrUnknownScheme = errors.New("unknown repository scheme")

// Location is a parsed repository address. Which fields are set depends on
// Scheme.
type Location struct {
	// Scheme is Local, S3 or REST.
	Scheme string

	// Path is the repository folder (local).
	Path string

	// Endpoint is the server as host or host:port (s3 and rest).
	Endpoint string
	// TLS is true for https (s3 and rest).
	TLS bool

	// Bucket is the bucket name (s3).
	Bucket string
	// Prefix is the key prefix inside the bucket, without leading or
	// trailing slash; empty for the whole bucket (s3).
	Prefix string

	// URL is the server address, with any user and password (rest). It is
	// a secret when it holds a password; String hides the password.
	URL string
}

// String returns the address in the form Parse accepts, with any password
// replaced by "xxxxx", so that it can be shown and logged.
func (l Location) String() string {
	switch l.Scheme {
	case Local:
		return "local:" + l.Path
	case S3:
		s := "s3:" + httpScheme(l.TLS) + "://" + l.Endpoint + "/" + l.Bucket
		if l.Prefix != "" {
			s += "/" + l.Prefix
		}
		return s
	case REST:
		u, err := url.Parse(l.URL)
		if err != nil {
			return "rest:(invalid URL)"
		}
		return "rest:" + u.Redacted()
	}
	return l.Scheme + ":?"
}

func httpScheme(tls bool) string {
	if tls {
		return "https"
	}
	return "http"
}

// Parse parses a repository address:
//
//	PATH                                 local folder
//	local:PATH                           local folder
//	s3:http[s]://HOST[:PORT]/BUCKET[/PREFIX]
//	rest:http[s]://[USER[:PASSWORD]@]HOST[:PORT][/PATH]
//
// A PATH that looks like "word:rest" is read as a scheme; write
// "./word:rest" or "local:word:rest" for such a folder.
func Parse(s string) (Location, error) {
	if s == "" {
		return Location{}, errors.New("empty repository address")
	}
	scheme, rest, ok := splitScheme(s)
	if !ok {
		return parseLocal(s, s)
	}
	switch scheme {
	case Local:
		return parseLocal(s, rest)
	case S3:
		return parseS3(s, rest)
	case REST:
		return parseREST(s, rest)
	}
	// The address is not quoted: with an unknown scheme there is no
	// telling where a password in it would be.
	return Location{}, fmt.Errorf("repository address: %w %q (want %s, %s or %s; for a folder whose name has a colon, start the path with \"./\" or \"local:\")",
		ErrUnknownScheme, scheme, Local, S3, REST)
}

// splitScheme splits "scheme:rest" where scheme is a word of letters,
// digits, '+', '-' or '.' that starts with a letter. It reports false for
// anything else, such as a path.
func splitScheme(s string) (scheme, rest string, ok bool) {
	i := strings.IndexByte(s, ':')
	if i <= 0 {
		return "", "", false
	}
	for j, c := range s[:i] {
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if j == 0 && !letter || !letter && !(c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') {
			return "", "", false
		}
	}
	return strings.ToLower(s[:i]), s[i+1:], true
}

// redact hides the password of an address, if it has one, for error
// messages.
func redact(addr string) string {
	scheme, rest, ok := splitScheme(addr)
	if !ok {
		return addr
	}
	if u, err := url.Parse(rest); err == nil {
		return scheme + ":" + u.Redacted()
	}
	// Unparsable: hide all of user and password.
	i := strings.Index(rest, "://")
	if i < 0 {
		return addr
	}
	host := rest[i+3:]
	if end := strings.IndexAny(host, "/?#"); end >= 0 {
		host = host[:end]
	}
	if at := strings.LastIndexByte(host, '@'); at >= 0 {
		return scheme + ":" + rest[:i+3] + "xxxxx" + rest[i+3+at:]
	}
	return addr
}

func parseLocal(addr, path string) (Location, error) {
	if path == "" {
		return Location{}, fmt.Errorf("repository address %q: empty path", addr)
	}
	if strings.IndexByte(path, 0) >= 0 {
		return Location{}, fmt.Errorf("repository address %q: NUL byte in path", addr)
	}
	return Location{Scheme: Local, Path: filepath.Clean(path)}, nil
}

// parseHTTP parses the URL of an s3 or rest address, which must be http or
// https with a host and neither query nor fragment.
func parseHTTP(addr, raw string) (*url.URL, error) {
	if !strings.HasPrefix(raw, "http://") && !strings.HasPrefix(raw, "https://") {
		return nil, fmt.Errorf("repository address %q: want http:// or https:// after the scheme", redact(addr))
	}
	u, err := url.Parse(raw)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // without the URL, which may hold a password
		}
		return nil, fmt.Errorf("repository address %q: %w", redact(addr), err)
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("repository address %q: no host", redact(addr))
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("repository address %q: invalid port %q", redact(addr), p)
		}
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return nil, fmt.Errorf("repository address %q: unexpected query or fragment", redact(addr))
	}
	return u, nil
}

func parseS3(addr, raw string) (Location, error) {
	u, err := parseHTTP(addr, raw)
	if err != nil {
		return Location{}, err
	}
	if u.User != nil {
		return Location{}, fmt.Errorf("repository address %q: credentials do not belong in an s3 address; set them in the environment", redact(addr))
	}
	path := strings.Trim(u.Path, "/")
	bucket, prefix, _ := strings.Cut(path, "/")
	if bucket == "" {
		return Location{}, fmt.Errorf("repository address %q: no bucket (want s3:%s://HOST/BUCKET[/PREFIX])", redact(addr), u.Scheme)
	}
	if err := checkBucket(bucket); err != nil {
		return Location{}, fmt.Errorf("repository address %q: %w", redact(addr), err)
	}
	if prefix != "" {
		for _, part := range strings.Split(prefix, "/") {
			if part == "" || part == "." || part == ".." {
				return Location{}, fmt.Errorf("repository address %q: invalid prefix %q", redact(addr), prefix)
			}
		}
	}
	return Location{
		Scheme:   S3,
		Endpoint: u.Host,
		TLS:      u.Scheme == "https",
		Bucket:   bucket,
		Prefix:   prefix,
	}, nil
}

// checkBucket applies the S3 bucket naming rules: 3 to 63 lowercase
// letters, digits, dots and hyphens, beginning and ending with a letter or
// digit.
func checkBucket(b string) error {
	if len(b) < 3 || len(b) > 63 {
		return fmt.Errorf("invalid bucket name %q: want 3 to 63 characters", b)
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && c != '.' && c != '-' || (i == 0 || i == len(b)-1) && !alnum {
			return fmt.Errorf("invalid bucket name %q: lowercase letters, digits, dots and hyphens only, starting and ending with a letter or digit", b)
		}
	}
	if strings.Contains(b, "..") {
		return fmt.Errorf("invalid bucket name %q: two dots in a row", b)
	}
	return nil
}

func parseREST(addr, raw string) (Location, error) {
	u, err := parseHTTP(addr, raw)
	if err != nil {
		return Location{}, err
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return Location{
		Scheme:   REST,
		Endpoint: u.Host,
		TLS:      u.Scheme == "https",
		URL:      u.String(),
	}, nil
}
