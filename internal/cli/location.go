package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/storage/local"
	"github.com/lifeboat-vault/lifeboat/internal/storage/s3"
)

// vaultFlags are shared by every vault command.
type vaultFlags struct {
	location       string
	passphraseFile string
	s3Endpoint     string
	s3CredsFile    string
}

func (f *vaultFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.location, "vault", "", "vault LOCATION: a directory, file:///path or s3://bucket/prefix (or $LIFEBOAT_VAULT)")
	cmd.Flags().StringVar(&f.passphraseFile, "passphrase-file", "", "read the passphrase from this file (mode 0600; default $LIFEBOAT_PASSPHRASE)")
	cmd.Flags().StringVar(&f.s3Endpoint, "s3-endpoint", "", "S3 endpoint URL, e.g. http://127.0.0.1:7070 (default $AWS_ENDPOINT_URL)")
	cmd.Flags().StringVar(&f.s3CredsFile, "s3-credentials-file", "", "file (mode 0600) with access_key_id= and secret_access_key= lines (default $AWS_ACCESS_KEY_ID and $AWS_SECRET_ACCESS_KEY)")
}

// openBackend opens the storage named by --vault. create makes a local
// directory that does not exist yet.
func (f *vaultFlags) openBackend(ctx context.Context, env Env, create bool) (storage.Backend, error) {
	loc := f.location
	if loc == "" {
		loc = env.Getenv("LIFEBOAT_VAULT")
	}
	if loc == "" {
		return nil, usagef("no vault given: use --vault LOCATION or set LIFEBOAT_VAULT")
	}
	switch {
	case strings.HasPrefix(loc, "s3://"):
		bucket, prefix, err := s3.ParseLocation(loc)
		if err != nil {
			return nil, lifeboat.Errorf(lifeboat.EInvalid, "vault location %q: %v", loc, err)
		}
		cfg := s3.Config{Bucket: bucket, Prefix: prefix, Region: env.Getenv("AWS_REGION")}
		ep := f.s3Endpoint
		if ep == "" {
			ep = env.Getenv("AWS_ENDPOINT_URL")
		}
		if ep == "" {
			return nil, lifeboat.Errorf(lifeboat.EInvalid, "vault %s: no S3 endpoint: use --s3-endpoint or set AWS_ENDPOINT_URL", loc)
		}
		u, err := url.Parse(ep)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, lifeboat.Errorf(lifeboat.EInvalid, "S3 endpoint %q: want http://host:port or https://host:port", ep)
		}
		cfg.Endpoint, cfg.UseTLS = u.Host, u.Scheme == "https"
		cfg.AccessKey, cfg.SecretKey, err = f.s3Credentials(env)
		if err != nil {
			return nil, err
		}
		be, err := s3.Open(ctx, cfg)
		if err != nil {
			return nil, backendError(loc, err)
		}
		return be, nil
	case strings.Contains(loc, "://") && !strings.HasPrefix(loc, "file://"):
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "vault location %q: unknown scheme (use a path, file:///path or s3://bucket/prefix)", loc)
	}
	dir := strings.TrimPrefix(loc, "file://")
	if dir == "" {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "vault location %q: empty path", loc)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "vault location %q: %v", loc, err)
	}
	if create {
		be, err := local.Create(dir, local.Options{})
		if err != nil {
			return nil, backendError(dir, err)
		}
		return be, nil
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil, lifeboat.Errorf(lifeboat.ENotFound, "no vault at %s (the directory does not exist)", dir)
	}
	be, err := local.Open(dir, local.Options{})
	if err != nil {
		return nil, backendError(dir, err)
	}
	return be, nil
}

func backendError(loc string, err error) error {
	var le *lifeboat.Error
	if errors.As(err, &le) {
		return err
	}
	if errors.Is(err, storage.ErrUnavailable) {
		return &lifeboat.Error{Code: lifeboat.EUnavailable, Message: oneLine(err.Error()), Err: err}
	}
	return &lifeboat.Error{Code: lifeboat.EUnavailable, Message: fmt.Sprintf("vault %s: %s", loc, oneLine(err.Error())), Err: err}
}

func (f *vaultFlags) s3Credentials(env Env) (string, string, error) {
	if f.s3CredsFile != "" {
		b, err := readSecretFile(f.s3CredsFile)
		if err != nil {
			return "", "", err
		}
		var ak, sk string
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
			if !ok {
				continue
			}
			switch strings.ToLower(strings.TrimSpace(k)) {
			case "access_key_id", "aws_access_key_id":
				ak = strings.TrimSpace(v)
			case "secret_access_key", "aws_secret_access_key":
				sk = strings.TrimSpace(v)
			}
		}
		if ak == "" || sk == "" {
			return "", "", lifeboat.Errorf(lifeboat.EInvalid, "S3 credentials file %s: want access_key_id= and secret_access_key= lines", f.s3CredsFile)
		}
		return ak, sk, nil
	}
	ak, sk := env.Getenv("AWS_ACCESS_KEY_ID"), env.Getenv("AWS_SECRET_ACCESS_KEY")
	if ak == "" || sk == "" {
		return "", "", lifeboat.Errorf(lifeboat.EInvalid, "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or use --s3-credentials-file")
	}
	return ak, sk, nil
}

// readSecretFile reads a file that must not be readable by group or others.
func readSecretFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "secret file %s: %v", path, errors.Unwrap(err))
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "secret file %s has mode %04o: make it 0600 (chmod 600 %s)", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "secret file %s: %v", path, errors.Unwrap(err))
	}
	return b, nil
}

func (f *vaultFlags) passphrase(env Env) ([]byte, error) {
	if f.passphraseFile != "" {
		b, err := readSecretFile(f.passphraseFile)
		if err != nil {
			return nil, err
		}
		b = bytes.TrimRight(b, "\r\n")
		if len(b) == 0 {
			return nil, lifeboat.Errorf(lifeboat.EInvalid, "passphrase file %s is empty", f.passphraseFile)
		}
		return b, nil
	}
	if p := env.Getenv("LIFEBOAT_PASSPHRASE"); p != "" {
		return []byte(p), nil
	}
	return nil, lifeboat.Errorf(lifeboat.EInvalid, "no passphrase: set LIFEBOAT_PASSPHRASE or use --passphrase-file FILE")
}
