package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/lifeboat-vault/lifeboat/internal/capture"
	"github.com/lifeboat-vault/lifeboat/internal/catalog"
	"github.com/lifeboat-vault/lifeboat/internal/keys"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/remote/ssh"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

func hostKeyName(host string) string { return "host/" + host + "/key" }

// prepareSSHHost registers an SSH host's identity in tx: the key it offers
// must have the fingerprint the operator confirmed (shown to them when
// missing); the private key (read once from KeyFile, 0600) must log in;
// then the host key is recorded and the private key sealed. Nothing is
// installed on the host.
func (s *Server) prepareSSHHost(ctx context.Context, tx *catalog.Tx, h *lifeboat.Host) error {
	if h.Kind != "ssh" {
		return nil
	}
	if h.Address == "" || h.User == "" {
		return lifeboat.Errorf(lifeboat.EInvalid, "host %s: an ssh host needs address and user", h.Name)
	}
	key, fp, err := ssh.Fingerprint(ctx, h.Address)
	if err != nil {
		return err
	}
	switch {
	case h.Fingerprint == "":
		return lifeboat.Errorf(lifeboat.EInvalid, "host %s at %s offers the host key %s: if that is its key, register it with fingerprint %s (lifeboat host add ... --fingerprint %s)", h.Name, h.Address, fp, fp, fp)
	case h.Fingerprint != fp:
		return lifeboat.Errorf(lifeboat.EAuth, "host %s at %s offers the host key %s, not %s: refusing (a changed key may be an attack)", h.Name, h.Address, fp, h.Fingerprint)
	}
	var pem []byte
	if h.KeyFile != "" {
		if err := keys.CheckPrivate(h.KeyFile); err != nil {
			return err
		}
		if pem, err = os.ReadFile(h.KeyFile); err != nil {
			return lifeboat.Errorf(lifeboat.EInvalid, "host %s: key file %s: %v", h.Name, h.KeyFile, err)
		}
	} else if sealed, err := tx.Secret(ctx, hostKeyName(h.Name)); err == nil {
		if pem, err = s.mk.Open(hostKeyName(h.Name), sealed); err != nil {
			return err
		}
	} else if errors.Is(err, catalog.ErrNotFound) {
		return lifeboat.Errorf(lifeboat.EInvalid, "host %s: keyFile (the private key to log in with) is required", h.Name)
	} else {
		return err
	}
	c, err := ssh.Dial(ctx, ssh.Config{Addr: h.Address, User: h.User, PrivateKey: pem, HostKey: key})
	if err != nil {
		return err
	}
	c.Close()
	h.HostKey, h.KeyFile = key, ""
	return tx.PutSecret(ctx, hostKeyName(h.Name), s.mk.Seal(hostKeyName(h.Name), pem))
}

// dialSSH logs in to a registered SSH host: its recorded host key only.
func (s *Server) dialSSH(ctx context.Context, h *lifeboat.Host) (*ssh.Client, error) {
	return s.dialSSHTx(ctx, nil, h)
}

// dialSSHTx is dialSSH reading the key in tx (nil: a transaction of its
// own; never nest one in another: SQLite has one connection).
func (s *Server) dialSSHTx(ctx context.Context, tx *catalog.Tx, h *lifeboat.Host) (*ssh.Client, error) {
	var sealed string
	err := s.inTx(ctx, tx, func(tx *catalog.Tx) error {
		var err error
		sealed, err = tx.Secret(ctx, hostKeyName(h.Name))
		return err
	})
	if err != nil {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "host %s has no private key recorded", h.Name)
	}
	pem, err := s.mk.Open(hostKeyName(h.Name), sealed)
	if err != nil {
		return nil, err
	}
	return ssh.Dial(ctx, ssh.Config{Addr: h.Address, User: h.User, PrivateKey: pem, HostKey: h.HostKey})
}

// inTx runs fn in tx, or in a read transaction of its own when tx is nil
// (never nest one in another: SQLite has one connection).
func (s *Server) inTx(ctx context.Context, tx *catalog.Tx, fn func(*catalog.Tx) error) error {
	if tx != nil {
		return fn(tx)
	}
	return s.db.View(ctx, fn)
}

// tunnel reaches a database server registered behind an SSH host: a local
// forward through the host to the server's address as the host sees it.
func (s *Server) tunnel(ctx context.Context, tx *catalog.Tx, via string, t capture.DBTarget) (capture.DBTarget, error) {
	var h *lifeboat.Host
	err := s.inTx(ctx, tx, func(tx *catalog.Tx) error {
		var err error
		h, err = tx.Host(ctx, via)
		return err
	})
	if err != nil || h.Kind != "ssh" {
		return t, lifeboat.Errorf(lifeboat.EInvalid, "database server %s: via %q is not a registered SSH host", t.Server, via)
	}
	cl, err := s.dialSSHTx(ctx, tx, h)
	if err != nil {
		return t, err
	}
	local, stop, err := cl.Forward(context.WithoutCancel(ctx), net.JoinHostPort(t.Host, strconv.Itoa(t.Port)))
	if err != nil {
		cl.Close()
		return t, err
	}
	host, port, _ := net.SplitHostPort(local)
	t.Host = host
	t.Port, _ = strconv.Atoi(port)
	t.OnClose(func() { stop(); cl.Close() })
	return t, nil
}

// dialRemote opens a remote tree of a registered SSH host.
func (s *Server) dialRemote(ctx context.Context, h *lifeboat.Host, root string) (vault.RemoteFS, error) {
	c, err := s.dialSSH(ctx, h)
	if err != nil {
		return nil, err
	}
	return &sshTree{c: c, root: root}, nil
}

// remoteTarget opens a registered SSH host for a restore.
func (s *Server) remoteTarget(ctx context.Context, h *lifeboat.Host) (capture.RemoteTarget, io.Closer, error) {
	c, err := s.dialSSH(ctx, h)
	if err != nil {
		return nil, nil, err
	}
	return sshTarget{c}, c, nil
}

// sshTarget is a capture.RemoteTarget over an SSH client.
type sshTarget struct{ *ssh.Client }

func (t sshTarget) RemoveAll(ctx context.Context, p string) error {
	if !strings.Contains(p, "/.lifeboat-") {
		return lifeboat.Errorf(lifeboat.EInternal, "refusing to remove %s: not a Lifeboat staging or kept tree", p)
	}
	// Never into a file system mounted inside it: the tree stays,
	// reported. The host's mount table is read first (a bind mount of a
	// directory of the same file system shares its device, so rm alone
	// would go into it and empty its source); then GNU rm's
	// --one-file-system, or, where rm does not know it, BSD rm's -x (an rm
	// with neither fails).
	const rm = mountsInside + `rm -rf --one-file-system -- "$p" && exit 0
{ [ -e "$p" ] || [ -L "$p" ]; } || exit 0
rm -rfx -- "$p" 2>/dev/null`
	return t.Run(ctx, []string{"sh", "-c", rm, "sh", p, mountinfoEscape.Replace(p)}, nil, io.Discard)
}

// RefuseMounts refuses, as invalid, a restore to the original place of
// component's directory p while a file system is mounted at it or inside
// it, as capture.RefuseMounts does on the local host.
func (t sshTarget) RefuseMounts(ctx context.Context, component, p string) error {
	err := t.Run(ctx, []string{"sh", "-c", mountsInside, "sh", p, mountinfoEscape.Replace(p)}, nil, io.Discard)
	if ee := (*ssh.ExitError)(nil); errors.As(err, &ee) && ee.Status == 3 {
		return lifeboat.Errorf(lifeboat.EInvalid, "component %s: %s, at or inside %s on %s: a restore to the original place swaps the whole directory and would move the mount aside with the replaced data; unmount it first, or restore to a directory", component, strings.TrimSpace(ee.Stderr), p, ee.Addr)
	}
	return err
}

// refuseRemoteMounts refuses component's directory dir on host h as
// sshTarget.RefuseMounts does, over a connection of its own.
func (s *Server) refuseRemoteMounts(ctx context.Context, h *lifeboat.Host, component, dir string) error {
	c, err := s.dialSSH(ctx, h)
	if err != nil {
		return fmt.Errorf("component %s: %w", component, err)
	}
	defer c.Close()
	return sshTarget{c}.RefuseMounts(ctx, component, dir)
}

// mountsInside is the start of a script that exits 3, saying where on its
// standard error, if a file system is mounted at $1 or inside it ($2: $1
// written as /proc/self/mountinfo writes paths), and leaves p=$1. Where
// the host has no /proc/self/mountinfo, it reads mount's output.
const mountsInside = `p=$1; esc=$2
if [ -r /proc/self/mountinfo ]; then
	while read -r _ _ _ _ mp _; do
		case "$mp" in "$esc"|"$esc"/*) printf 'a file system is mounted at %s\n' "$mp" >&2; exit 3;; esac
	done </proc/self/mountinfo
else
	mount | while IFS= read -r l; do case "$l" in *" on $p "*|*" on $p/"*) exit 3;; esac; done ||
		{ printf 'a file system is mounted inside %s\n' "$p" >&2; exit 3; }
fi
`

// mountinfoEscape writes a path as /proc/self/mountinfo does.
var mountinfoEscape = strings.NewReplacer(`\`, `\134`, " ", `\040`, "\t", `\011`, "\n", `\012`)

// sshTree is a vault.RemoteFS over an SSH client.
type sshTree struct {
	c    *ssh.Client
	root string
}

// List lists a tree of the host (a kept one, to look for what a component
// does not capture).
func (t sshTarget) List(ctx context.Context, root string) ([]vault.RemoteEntry, error) {
	return remoteEntries(t.Scan(ctx, root))
}

func (t *sshTree) Scan(ctx context.Context) ([]vault.RemoteEntry, error) {
	return remoteEntries(t.c.Scan(ctx, t.root))
}

func remoteEntries(es []ssh.Entry, err error) ([]vault.RemoteEntry, error) {
	if err != nil {
		return nil, err
	}
	out := make([]vault.RemoteEntry, len(es))
	for i, e := range es {
		out[i] = vault.RemoteEntry{Path: e.Path, Type: e.Type, Mode: e.Mode, UID: e.UID, GID: e.GID, Size: e.Size,
			MTime: e.MTime, CTime: e.CTime, Inode: e.Inode, Target: e.Target, Precise: e.Precise}
	}
	return out, nil
}

func (t *sshTree) Open(ctx context.Context, rel string) (io.ReadCloser, error) {
	return t.c.Open(t.root + "/" + rel)
}

func (t *sshTree) Close() error { return t.c.Close() }

// remoteRead reads one small file of an SSH host with its mode (from the
// host's own listing of it), refusing anything but a regular file.
func (s *Server) remoteRead(ctx context.Context, h *lifeboat.Host, p string, max int64) ([]byte, os.FileMode, error) {
	c, err := s.dialSSH(ctx, h)
	if err != nil {
		return nil, 0, err
	}
	defer c.Close()
	es, err := c.Scan(ctx, p)
	if err != nil {
		return nil, 0, err
	}
	if len(es) != 1 || es[0].Type != 'f' {
		return nil, 0, lifeboat.Errorf(lifeboat.EInvalid, "config file %s on host %s is not a regular file", p, h.Name)
	}
	if es[0].Size > max {
		return nil, 0, lifeboat.Errorf(lifeboat.EInvalid, "config file %s on host %s is %d bytes; config files are at most %d", p, h.Name, es[0].Size, max)
	}
	rc, err := c.Open(p)
	if err != nil {
		return nil, 0, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, 0, err
	}
	return data, os.FileMode(es[0].Mode & 0o777), nil
}
