package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"

	"github.com/spf13/cobra"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/storage/location"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

// vaultFlags are shared by every vault command.
type vaultFlags struct {
	location       string
	passphraseFile string
	passphraseCmd  string
	// untrimmed is LIFEBOAT_PASSPHRASE as given when a trailing newline was
	// cut from it: a vault created before it was cut opens with it.
	untrimmed   []byte
	s3Endpoint  string
	s3CredsFile string
	keySlotFile string
}

func (f *vaultFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.location, "vault", "", "vault LOCATION: a directory, file:///path or s3://bucket/prefix (or $LIFEBOAT_VAULT)")
	cmd.Flags().StringVar(&f.passphraseFile, "passphrase-file", "", "read the passphrase from this file (mode 0600; default $LIFEBOAT_PASSPHRASE)")
	cmd.Flags().StringVar(&f.passphraseCmd, "passphrase-command", "", "run this shell command and use what it prints as the passphrase (a secret manager's CLI; default $LIFEBOAT_PASSPHRASE_COMMAND)")
	cmd.Flags().StringVar(&f.s3Endpoint, "s3-endpoint", "", "S3 endpoint URL, e.g. http://127.0.0.1:7070 (default $AWS_ENDPOINT_URL)")
	cmd.Flags().StringVar(&f.s3CredsFile, "s3-credentials-file", "", "file (mode 0600) with access_key_id= and secret_access_key= lines (default $AWS_ACCESS_KEY_ID and $AWS_SECRET_ACCESS_KEY)")
	cmd.Flags().StringVar(&f.keySlotFile, "key-slot-file", "", "a disaster kit (or a key slot's JSON): its copy of a key slot is tried first, for a vault whose slots were deleted")
}

// Lines around a key slot in a disaster kit.
const (
	kitSlotBegin = "-----BEGIN LIFEBOAT KEY SLOT-----"
	kitSlotEnd   = "-----END LIFEBOAT KEY SLOT-----"
)

// keySlot reads --key-slot-file: a disaster kit, or a key slot's JSON
// (nil when the flag is not given).
func (f *vaultFlags) keySlot() ([]byte, error) {
	if f.keySlotFile == "" {
		return nil, nil
	}
	b, err := os.ReadFile(f.keySlotFile)
	if err != nil {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "--key-slot-file: %v", err)
	}
	if i := bytes.Index(b, []byte(kitSlotBegin)); i >= 0 {
		rest := b[i+len(kitSlotBegin):]
		j := bytes.Index(rest, []byte(kitSlotEnd))
		if j < 0 {
			return nil, lifeboat.Errorf(lifeboat.EInvalid, "--key-slot-file %s: %s without %s", f.keySlotFile, kitSlotBegin, kitSlotEnd)
		}
		raw, err := base64.StdEncoding.DecodeString(string(bytes.Join(bytes.Fields(rest[:j]), nil)))
		if err != nil {
			return nil, lifeboat.Errorf(lifeboat.EInvalid, "--key-slot-file %s: the key slot is damaged (%v)", f.keySlotFile, err)
		}
		return raw, nil
	}
	return bytes.TrimSpace(b), nil
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
	sp := location.Spec{Location: loc}
	if location.IsS3(loc) {
		if _, err := location.Check(loc); err != nil {
			return nil, err
		}
		sp.Region = env.Getenv("AWS_REGION")
		sp.Endpoint = f.s3Endpoint
		if sp.Endpoint == "" {
			sp.Endpoint = env.Getenv("AWS_ENDPOINT_URL")
		}
		if sp.Endpoint == "" {
			return nil, lifeboat.Errorf(lifeboat.EInvalid, "vault %s: no S3 endpoint: use --s3-endpoint or set AWS_ENDPOINT_URL", loc)
		}
		var err error
		if sp.AccessKey, sp.SecretKey, err = f.s3Credentials(env); err != nil {
			return nil, err
		}
	}
	return location.Open(ctx, sp, create)
}

func (f *vaultFlags) s3Credentials(env Env) (string, string, error) {
	if f.s3CredsFile != "" {
		b, err := readSecretFile(f.s3CredsFile)
		if err != nil {
			return "", "", err
		}
		return location.ParseCredentials(f.s3CredsFile, b)
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
	cmdline := f.passphraseCmd
	if cmdline == "" && f.passphraseFile == "" {
		cmdline = env.Getenv("LIFEBOAT_PASSPHRASE_COMMAND")
	}
	if f.passphraseFile != "" && f.passphraseCmd != "" {
		return nil, usagef("--passphrase-file and --passphrase-command: choose one")
	}
	if cmdline != "" {
		return passphraseFromCommand(cmdline)
	}
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
		// As from a file: a secret mounted from a file into the variable
		// keeps the file's newline, which would become part of the key.
		b := bytes.TrimRight([]byte(p), "\r\n")
		if len(b) == 0 {
			return nil, lifeboat.Errorf(lifeboat.EInvalid, "LIFEBOAT_PASSPHRASE holds only a line break")
		}
		if len(b) != len(p) {
			f.untrimmed = []byte(p)
		}
		return b, nil
	}
	return nil, lifeboat.Errorf(lifeboat.EInvalid, "no passphrase: set LIFEBOAT_PASSPHRASE or use --passphrase-file FILE")
}

// passphraseFromCommand runs cmdline with /bin/sh (stdin empty, stderr
// passed through, 30 s at most) and returns what it printed, without the
// trailing newline. Neither the command's output nor its stderr is ever
// part of an error.
func passphraseFromCommand(cmdline string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", cmdline)
	cmd.Stderr = os.Stderr
	var out bytes.Buffer
	cmd.Stdout = &limitedWriter{w: &out, n: 64 << 10}
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, lifeboat.Errorf(lifeboat.EInvalid, "passphrase command: no answer within 30 s")
		}
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "passphrase command failed: %v", err)
	}
	b := bytes.TrimRight(out.Bytes(), "\r\n")
	if len(b) == 0 {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "passphrase command printed nothing")
	}
	return b, nil
}

// limitedWriter keeps at most n bytes and fails past them.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if len(p) > l.n {
		return 0, fmt.Errorf("more than 64 KiB")
	}
	l.n -= len(p)
	return l.w.Write(p)
}

// open opens the vault with pass, and with LIFEBOAT_PASSPHRASE as given
// (its trailing newline kept) when pass is wrong and that differs.
func (f *vaultFlags) open(ctx context.Context, be storage.Backend, pass []byte, o vault.Options) (*vault.Vault, error) {
	v, err := vault.Open(ctx, be, pass, o)
	if lifeboat.ErrorCode(err) == lifeboat.EAuth && f.untrimmed != nil {
		if v2, err2 := vault.Open(ctx, be, f.untrimmed, o); err2 == nil {
			return v2, nil
		}
	}
	return v, err
}
