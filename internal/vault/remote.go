package vault

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/vault/blob"
	"github.com/lifeboat-vault/lifeboat/internal/vault/chunker"
	"github.com/lifeboat-vault/lifeboat/internal/vault/manifest"
	"github.com/lifeboat-vault/lifeboat/internal/vault/tree"
)

// RemoteFS is a tree on another host (reached over SSH): listed in one go,
// its files opened one by one. Nothing runs on the remote host but its own
// tools (find) and its SFTP server.
type RemoteFS interface {
	// Scan lists every entry under the root; "." is the root itself.
	Scan(ctx context.Context) ([]RemoteEntry, error)
	// Open reads one file (rel as listed).
	Open(ctx context.Context, rel string) (io.ReadCloser, error)
}

// RemoteEntry is one listed entry.
type RemoteEntry struct {
	Path         string // slash-separated, relative to the root; "." is the root
	Type         byte   // 'f' file, 'd' dir, 'l' symlink; others are skipped
	Mode         uint32
	UID, GID     uint32
	Size         int64
	MTime, CTime int64 // ns; CTime 0 when not Precise
	Inode        uint64
	Target       string
	// Precise: inode, ctime and ns times are known (a find listing). When
	// not (an SFTP walk: whole-second mtimes, no inode or ctime), a file
	// whose mtime is within 2 s of the previous scan is read again rather
	// than trusted unchanged.
	Precise bool
}

// remoteSlack is how close to the previous scan an imprecise mtime must be
// for the file to be read again.
const remoteSlack = 2 * time.Second

// captureRemote captures a remote tree: the unchanged-file rule on the
// listing's metadata, changed files read through the remote FS.
func (b *backup) captureRemote(src Source, parent *tree.Node, prevScan time.Time) (*tree.Node, error) {
	entries, err := src.Remote.Scan(b.ctx)
	if err != nil {
		return nil, err
	}
	children := map[string][]RemoteEntry{}
	var root *RemoteEntry
	for i := range entries {
		e := entries[i]
		if e.Path == "." {
			root = &entries[i]
			continue
		}
		dir := path.Dir(e.Path)
		children[dir] = append(children[dir], e)
	}
	if root == nil || root.Type != 'd' {
		return nil, lifeboat.Errorf(lifeboat.ENotFound, "cannot back up %s: not a directory on the remote host", src.Describe)
	}
	var pt *tree.Tree
	if parent != nil && parent.Type == tree.Dir {
		pt = b.loadParentTree(parent)
	}
	cdc := chunker.NewWithTable(nil, b.v.table, b.v.params)
	return b.remoteDir(src, *root, src.Name, children, pt, cdc, prevScan)
}

func remoteNode(name string, e RemoteEntry) *tree.Node {
	return &tree.Node{Name: name, Mode: e.Mode & 0o7777, UID: e.UID, GID: e.GID, MTime: e.MTime, CTime: e.CTime, Inode: e.Inode}
}

func (b *backup) remoteDir(src Source, e RemoteEntry, name string, children map[string][]RemoteEntry, parent *tree.Tree, cdc *chunker.Chunker, prevScan time.Time) (*tree.Node, error) {
	node := remoteNode(name, e)
	node.Type = tree.Dir
	b.count(func(s *manifest.Stats) { s.Dirs++ })
	list := children[e.Path]
	sort.Slice(list, func(i, j int) bool { return list[i].Path < list[j].Path })
	t := &tree.Tree{}
	for _, c := range list {
		if err := b.ctx.Err(); err != nil {
			return nil, err
		}
		cname := path.Base(c.Path)
		where := src.Describe + "/" + c.Path
		if !tree.ValidName(cname) {
			b.warn(where, errors.New("skipped: a name a tree cannot hold"))
			continue
		}
		if b.excluded(c.Path, cname, c.Type == 'd') {
			continue
		}
		var pn *tree.Node
		if parent != nil {
			pn = parent.Find(cname)
		}
		switch c.Type {
		case 'd':
			var pt *tree.Tree
			if pn != nil && pn.Type == tree.Dir {
				pt = b.loadParentTree(pn)
			}
			n, err := b.remoteDir(src, c, cname, children, pt, cdc, prevScan)
			if err != nil {
				return nil, err
			}
			t.Nodes = append(t.Nodes, n)
		case 'l':
			n := remoteNode(cname, c)
			n.Type, n.Target = tree.Symlink, c.Target
			b.count(func(s *manifest.Stats) { s.Symlinks++ })
			t.Nodes = append(t.Nodes, n)
		case 'f':
			n, err := b.remoteFile(src, c, cname, pn, cdc, prevScan)
			if err != nil {
				return nil, err
			}
			if n != nil {
				t.Nodes = append(t.Nodes, n)
			}
		default:
			b.warn(where, errors.New("skipped: not a regular file, directory or symlink"))
		}
	}
	enc, err := tree.Encode(t)
	if err != nil {
		return nil, fmt.Errorf("encode tree of %s/%s: %w", src.Describe, e.Path, err)
	}
	id, _, err := b.s.save(blob.Tree, enc)
	if err != nil {
		return nil, err
	}
	node.Subtree = &id
	return node, nil
}

// remoteUnchanged is the unchanged-file rule for a listed entry.
func remoteUnchanged(e RemoteEntry, pn *tree.Node, prevScan time.Time) bool {
	if pn == nil || pn.Type != tree.File || pn.Size != e.Size || pn.MTime != e.MTime {
		return false
	}
	if e.Precise {
		return pn.Inode == e.Inode && pn.CTime == e.CTime
	}
	// Whole-second times: a file changed in the same second as the last
	// scan would look unchanged; read again anything that recent.
	return !prevScan.IsZero() && time.Unix(0, e.MTime).Before(prevScan.Add(-remoteSlack))
}

func (b *backup) remoteFile(src Source, e RemoteEntry, name string, pn *tree.Node, cdc *chunker.Chunker, prevScan time.Time) (*tree.Node, error) {
	node := remoteNode(name, e)
	node.Type, node.Size = tree.File, e.Size
	b.count(func(s *manifest.Stats) { s.Files++; s.Bytes += e.Size })
	if remoteUnchanged(e, pn, prevScan) && b.allKnown(pn.Content) {
		node.Content = pn.Content
		b.count(func(s *manifest.Stats) { s.UnchangedFiles++ })
		b.prog.Files.Add(1)
		b.prog.Bytes.Add(e.Size)
		return node, nil
	}
	where := src.Describe + "/" + e.Path
	rc, err := src.Remote.Open(b.ctx, e.Path)
	if err != nil {
		b.warn(where, err)
		return nil, nil
	}
	n, err := b.readStream(cdc, rc, node)
	rc.Close()
	if err != nil {
		if b.ctx.Err() != nil {
			return nil, b.ctx.Err()
		}
		var le *lifeboat.Error
		var se *storeError
		if errors.As(err, &se) || (errors.As(err, &le) && le.Code == lifeboat.EUnavailable) {
			return nil, err // the storage, not the file
		}
		b.warn(where, fmt.Errorf("read: %w", err))
		return nil, nil
	}
	b.prog.Files.Add(1)
	b.count(func(s *manifest.Stats) { s.BytesRead += n })
	if n != e.Size {
		b.warn(where, &fileChangedError{fmt.Sprintf("changed while being read: listed %d bytes, read %d", e.Size, n)})
		node.Size = n
		node.MTime = 0 // never trusted unchanged next time
	}
	return node, nil
}
