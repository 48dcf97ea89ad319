package ssh

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/pkg/sftp"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// Entry is one file of a remote tree.
type Entry struct {
	Path   string // relative to the scanned root, slash-separated; "." is the root
	Type   byte   // 'f' file, 'd' dir, 'l' symlink, 'p' fifo, 's' socket, 'c', 'b' devices
	Mode   uint32 // permission bits with setuid, setgid, sticky (07777)
	UID    uint32
	GID    uint32
	Size   int64
	MTime  int64 // ns since the epoch; whole seconds when !Precise
	CTime  int64 // ns since the epoch; 0 when !Precise
	Inode  uint64
	Nlink  uint64 // 0 when !Precise
	Target string // symlink target
	// Precise reports a find listing. false: an SFTP walk, with no inode,
	// ctime or nlink and whole-second mtimes, so a file whose mtime is within
	// 2 s of the previous scan must be re-read rather than trusted unchanged.
	Precise bool
}

// findFormat prints, per entry: fixed numeric fields, NUL, the path, NUL,
// the link target (empty unless a symlink), NUL. Names may hold any byte
// but NUL, so this parses unambiguously. %T@ and %C@ print seconds with a
// 10-digit fraction: parsed as integers (a float64 would lose nanoseconds).
const findFormat = `%i %C@ %T@ %s %m %y %n %U %G\0%p\0%l\0`

// Scan lists the tree at root (an absolute path; symlinks are listed, never
// followed, the root included) with one remote `find -P ROOT -printf`
// command. Where find -printf is unavailable (probed once per Client), or
// Config.SFTPScan is set, it walks the tree over SFTP instead and the
// entries have Precise=false.
//
// If some directories could not be read, Scan returns the entries it got
// and a lifeboat.EPartial error naming them.
func (c *Client) Scan(ctx context.Context, root string) ([]Entry, error) {
	if !path.IsAbs(root) {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "scan %s:%s: not an absolute path", c.addr, root)
	}
	root = path.Clean(root)
	if c.sftpScan || !c.findWorks(ctx) {
		return c.scanSFTP(ctx, root)
	}
	return c.scanFind(ctx, root)
}

// findWorks probes once whether the host's find has GNU -printf with
// fractional times.
func (c *Client) findWorks(ctx context.Context) bool {
	c.mu.Lock()
	known := c.hasFind
	c.mu.Unlock()
	if known != nil {
		return *known
	}
	var out bytes.Buffer
	err := c.Run(ctx, []string{"find", "/", "-maxdepth", "0", "-printf", `%i %T@\0`}, nil, &out)
	ok := false
	if err == nil {
		f := strings.Fields(strings.TrimSuffix(out.String(), "\x00"))
		ok = len(f) == 2 && strings.Contains(f[1], ".")
		if ok {
			_, err1 := strconv.ParseUint(f[0], 10, 64)
			_, err2 := parseTime(f[1])
			ok = err1 == nil && err2 == nil
		}
	}
	if ctx.Err() != nil {
		return false
	}
	c.mu.Lock()
	c.hasFind = &ok
	c.mu.Unlock()
	return ok
}

func (c *Client) scanFind(ctx context.Context, root string) ([]Entry, error) {
	pr, pw := io.Pipe()
	runErr := make(chan error, 1)
	go func() {
		err := c.Run(ctx, []string{"find", "-P", root, "-printf", findFormat}, nil, pw)
		pw.Close()
		runErr <- err
	}()
	entries, perr := parseFind(pr, root)
	// Drain even after a parse error: a session whose output is not read
	// never sees its exit status, and Run would not return.
	io.Copy(io.Discard, pr)
	err := <-runErr
	var ee *ExitError
	switch {
	case perr != nil && err == nil:
		return nil, fmt.Errorf("scan %s:%s: %w", c.addr, root, perr)
	case err == nil:
		return entries, nil
	case errors.As(err, &ee) && ee.Status == 1 && perr == nil && len(entries) > 0:
		// GNU find exits 1 when it could not read part of the tree.
		return entries, lifeboat.Errorf(lifeboat.EPartial, "scan %s:%s: some entries skipped: %s", c.addr, root, strings.TrimSpace(ee.Stderr))
	case errors.As(err, &ee) && strings.Contains(ee.Stderr, "No such file or directory") && len(entries) == 0:
		return nil, lifeboat.Errorf(lifeboat.ENotFound, "scan %s:%s: no such file or directory", c.addr, root)
	default:
		return nil, fmt.Errorf("scan %s:%s: %w", c.addr, root, err)
	}
}

// parseFind reads findFormat records.
func parseFind(r io.Reader, root string) ([]Entry, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var out []Entry
	field := func() (string, error) {
		b, err := br.ReadBytes(0)
		if err != nil {
			if err == io.EOF {
				return "", io.ErrUnexpectedEOF
			}
			return "", err
		}
		return string(b[:len(b)-1]), nil
	}
	for {
		if _, err := br.Peek(1); err == io.EOF {
			return out, nil
		}
		head, err := field()
		if err != nil {
			return out, err
		}
		p, err := field()
		if err != nil {
			return out, err
		}
		target, err := field()
		if err != nil {
			return out, err
		}
		e, err := parseHead(head)
		if err != nil {
			return out, fmt.Errorf("find record for %q: %w", p, err)
		}
		if e.Path, err = relPath(root, p); err != nil {
			return out, err
		}
		if e.Type == 'l' {
			e.Target = target
		}
		out = append(out, e)
	}
}

func parseHead(head string) (Entry, error) {
	f := strings.Split(head, " ")
	if len(f) != 9 || len(f[5]) != 1 {
		return Entry{}, fmt.Errorf("malformed fields %q", head)
	}
	var e Entry
	var err error
	num := func(s string, base, bits int) uint64 {
		v, perr := strconv.ParseUint(s, base, bits)
		if perr != nil && err == nil {
			err = perr
		}
		return v
	}
	e.Inode = num(f[0], 10, 64)
	e.Size = int64(num(f[3], 10, 63))
	e.Mode = uint32(num(f[4], 8, 32))
	e.Type = f[5][0]
	e.Nlink = num(f[6], 10, 64)
	e.UID = uint32(num(f[7], 10, 32))
	e.GID = uint32(num(f[8], 10, 32))
	if err != nil {
		return Entry{}, fmt.Errorf("malformed fields %q: %w", head, err)
	}
	if e.CTime, err = parseTime(f[1]); err != nil {
		return Entry{}, err
	}
	if e.MTime, err = parseTime(f[2]); err != nil {
		return Entry{}, err
	}
	e.Precise = true
	return e, nil
}

// parseTime parses find's "SECONDS.FRACTION" (possibly negative) into ns.
func parseTime(s string) (int64, error) {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	sec, frac, _ := strings.Cut(s, ".")
	n, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("malformed time %q", s)
	}
	frac = (frac + "000000000")[:9]
	ns, err := strconv.ParseInt(frac, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("malformed time %q", s)
	}
	t := n*1e9 + ns
	if neg {
		t = -t
	}
	return t, nil
}

// relPath turns a path find or the SFTP walk printed into one relative to root.
func relPath(root, p string) (string, error) {
	if p == root {
		return ".", nil
	}
	prefix := root + "/"
	if root == "/" {
		prefix = "/"
	}
	rel, ok := strings.CutPrefix(p, prefix)
	if !ok || rel == "" {
		return "", fmt.Errorf("path %q is not under %q", p, root)
	}
	return rel, nil
}

// scanSFTP walks root over SFTP (lstat semantics: symlinks are not followed).
func (c *Client) scanSFTP(ctx context.Context, root string) ([]Entry, error) {
	sc, err := c.sftp()
	if err != nil {
		return nil, err
	}
	var out []Entry
	var skipped []string
	w := sc.Walk(root)
	for w.Step() {
		if err := ctx.Err(); err != nil {
			return nil, lifeboat.Errorf(lifeboat.EInterrupted, "scan %s:%s: %w", c.addr, root, context.Cause(ctx))
		}
		p := w.Path()
		if err := w.Err(); err != nil {
			if p == root {
				if errors.Is(err, fs.ErrNotExist) {
					return nil, lifeboat.Errorf(lifeboat.ENotFound, "scan %s:%s: no such file or directory", c.addr, root)
				}
				return nil, fmt.Errorf("scan %s:%s: %w", c.addr, root, err)
			}
			skipped = append(skipped, fmt.Sprintf("%s: %v", p, err))
			continue
		}
		st, ok := w.Stat().Sys().(*sftp.FileStat)
		if !ok {
			return nil, fmt.Errorf("scan %s:%s: no SFTP attributes for %q", c.addr, root, p)
		}
		rel, err := relPath(root, p)
		if err != nil {
			return nil, fmt.Errorf("scan %s:%s: %w", c.addr, root, err)
		}
		e := Entry{
			Path:  rel,
			Type:  typeOf(st.Mode),
			Mode:  st.Mode & 0o7777,
			UID:   st.UID,
			GID:   st.GID,
			Size:  int64(st.Size),
			MTime: int64(st.Mtime) * 1e9,
		}
		if e.Type == 'l' {
			if e.Target, err = sc.ReadLink(p); err != nil {
				skipped = append(skipped, fmt.Sprintf("%s: readlink: %v", p, err))
				continue
			}
		}
		out = append(out, e)
	}
	if len(skipped) > 0 {
		return out, lifeboat.Errorf(lifeboat.EPartial, "scan %s:%s: some entries skipped: %s", c.addr, root, strings.Join(skipped, "; "))
	}
	return out, nil
}

// typeOf maps POSIX S_IFMT bits (as SFTP sends them) to find's %y letters.
func typeOf(mode uint32) byte {
	switch mode & 0o170000 {
	case 0o100000:
		return 'f'
	case 0o040000:
		return 'd'
	case 0o120000:
		return 'l'
	case 0o010000:
		return 'p'
	case 0o140000:
		return 's'
	case 0o020000:
		return 'c'
	case 0o060000:
		return 'b'
	}
	return '?'
}

// Open opens a remote file for reading over SFTP. SFTP cannot refuse to
// follow a symlink: open paths that Scan listed as regular files, and
// compare size and mtime of what was read with the listing.
func (c *Client) Open(p string) (io.ReadCloser, error) {
	sc, err := c.sftp()
	if err != nil {
		return nil, err
	}
	f, err := sc.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, lifeboat.Errorf(lifeboat.ENotFound, "open %s:%s: no such file", c.addr, p)
		}
		return nil, fmt.Errorf("open %s:%s: %w", c.addr, p, err)
	}
	return f, nil
}
