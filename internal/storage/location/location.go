// Package location opens the storage backend a vault LOCATION names: a
// directory path, file:///path, or s3://bucket/prefix with an endpoint and
// credentials. The CLI and the server both open vaults through it. It
// imports storage and its backends only.
package location

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/storage/local"
	"github.com/lifeboat-vault/lifeboat/internal/storage/s3"
)

// Spec names a vault's storage.
type Spec struct {
	Location string
	// S3 only.
	Endpoint             string // http(s)://host:port
	AccessKey, SecretKey string
	Region               string
}

// IsS3 reports whether loc names S3 storage.
func IsS3(loc string) bool { return strings.HasPrefix(loc, "s3://") }

// Check validates the shape of a location without touching storage, and
// returns it normalised (local paths absolute).
func Check(loc string) (string, error) {
	switch {
	case loc == "":
		return "", lifeboat.Errorf(lifeboat.EInvalid, "empty vault location")
	case IsS3(loc):
		if bucket, _, _ := strings.Cut(strings.TrimPrefix(loc, "s3://"), "/"); strings.Contains(bucket, "@") {
			return "", lifeboat.Errorf(lifeboat.EInvalid, "vault location %q: no credentials in the location: they come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or a 0600 file)", s3.RedactEndpoint(loc))
		}
		if _, _, err := s3.ParseLocation(loc); err != nil {
			return "", lifeboat.Errorf(lifeboat.EInvalid, "vault location %q: %v", loc, err)
		}
		return loc, nil
	case strings.Contains(loc, "://") && !strings.HasPrefix(loc, "file://"):
		return "", lifeboat.Errorf(lifeboat.EInvalid, "vault location %q: unknown scheme (use a path, file:///path or s3://bucket/prefix)", loc)
	}
	dir := strings.TrimPrefix(loc, "file://")
	if dir == "" {
		return "", lifeboat.Errorf(lifeboat.EInvalid, "vault location %q: empty path", loc)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", lifeboat.Errorf(lifeboat.EInvalid, "vault location %q: %v", loc, err)
	}
	return dir, nil
}

// vaultEntry names what a directory may hold for a vault to be created in
// it: what a vault holds, and a file system's lost+found.
var vaultEntry = map[string]bool{"lost+found": true, "lifeboat.json": true, "keys": true, "datakeys": true, "data": true,
	"index": true, "points": true, "markers": true, "condemned": true, "purged": true, "audit": true, "settings": true,
	"locks": true}

// Open opens the backend. create makes a local directory that does not
// exist yet.
func Open(ctx context.Context, sp Spec, create bool) (storage.Backend, error) {
	loc, err := Check(sp.Location)
	if err != nil {
		return nil, err
	}
	if IsS3(loc) {
		bucket, prefix, _ := s3.ParseLocation(loc)
		cfg := s3.Config{Bucket: bucket, Prefix: prefix, Region: sp.Region}
		if sp.Endpoint == "" {
			return nil, lifeboat.Errorf(lifeboat.EInvalid, "vault %s: no S3 endpoint: use --s3-endpoint or set AWS_ENDPOINT_URL", loc)
		}
		u, err := url.Parse(sp.Endpoint)
		if err == nil && u.User != nil {
			return nil, lifeboat.Errorf(lifeboat.EInvalid, "S3 endpoint %q: no credentials in the endpoint: they come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or a 0600 file)", s3.RedactEndpoint(sp.Endpoint))
		}
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" {
			return nil, lifeboat.Errorf(lifeboat.EInvalid, "S3 endpoint %q: want http://host:port or https://host:port", s3.RedactEndpoint(sp.Endpoint))
		}
		cfg.Endpoint, cfg.UseTLS = u.Host, u.Scheme == "https"
		if sp.AccessKey == "" || sp.SecretKey == "" {
			return nil, lifeboat.Errorf(lifeboat.EInvalid, "vault %s: no S3 credentials", loc)
		}
		cfg.AccessKey, cfg.SecretKey = sp.AccessKey, sp.SecretKey
		be, err := s3.Open(ctx, cfg)
		if err != nil {
			// Which server answered: a wrong AWS_ENDPOINT_URL looks like a
			// missing bucket or a refused key otherwise.
			return nil, Error(loc, fmt.Errorf("%w (endpoint %s://%s)", err, u.Scheme, u.Host))
		}
		return be, nil
	}
	if fi, err := os.Stat(loc); err == nil && !fi.IsDir() {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "vault location %s is a file, not a directory", loc)
	}
	if create {
		// A new vault goes into a new or empty directory, never into live
		// data (whose next backup would capture the vault).
		if ents, err := os.ReadDir(loc); err == nil {
			for _, e := range ents {
				// The root of a fresh disk, or an init cut short before
				// its config (keys/ first), is fine.
				if !vaultEntry[e.Name()] {
					return nil, lifeboat.Errorf(lifeboat.EExists, "%s holds %s and no vault: a vault is created in a new or empty directory", loc, e.Name())
				}
			}
		}
		be, err := local.Create(loc, local.Options{})
		if err != nil {
			return nil, Error(loc, err)
		}
		return be, nil
	}
	if _, err := os.Stat(loc); errors.Is(err, os.ErrNotExist) {
		return nil, lifeboat.Errorf(lifeboat.ENotFound, "no vault at %s (the directory does not exist)", loc)
	}
	be, err := local.Open(loc, local.Options{})
	if err != nil {
		return nil, Error(loc, err)
	}
	return be, nil
}

// Error turns a backend error into a user-facing one naming the location.
func Error(loc string, err error) error {
	var le *lifeboat.Error
	if errors.As(err, &le) {
		return err
	}
	msg := strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
	if errors.Is(err, storage.ErrUnavailable) {
		return &lifeboat.Error{Code: lifeboat.EUnavailable, Message: msg, Err: err}
	}
	return &lifeboat.Error{Code: lifeboat.EUnavailable, Message: fmt.Sprintf("vault %s: %s", loc, msg), Err: err}
}

// ParseCredentials reads S3 credentials from the text of a credentials file:
// access_key_id= and secret_access_key= lines (aws_ prefixes accepted).
// name is for the error message.
func ParseCredentials(name string, data []byte) (accessKey, secretKey string, err error) {
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "access_key_id", "aws_access_key_id":
			accessKey = strings.TrimSpace(v)
		case "secret_access_key", "aws_secret_access_key":
			secretKey = strings.TrimSpace(v)
		}
	}
	if accessKey == "" || secretKey == "" {
		return "", "", lifeboat.Errorf(lifeboat.EInvalid, "S3 credentials file %s: want access_key_id= and secret_access_key= lines", name)
	}
	return accessKey, secretKey, nil
}
