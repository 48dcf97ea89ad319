// Package local stores a vault in a directory: object "data/ab/abcd" is the
// file ROOT/data/ab/abcd. Names are checked with storage.CheckName, so none
// can leave the root.
//
// Put is atomic, durable and never overwrites:
//
//	mkdir each missing directory, fsync its parent          ("mkdir-parent")
//	final exists -> fsync the directory, ErrExists
//	create ROOT/dir/.tmp-RANDOM (O_EXCL), write everything
//	fsync the temp file, close it                           ("file")
//	renameat2(tmp, final, RENAME_NOREPLACE)
//	    EEXIST  -> remove tmp, fsync the directory, ErrExists
//	    EINVAL/ENOSYS (no RENAME_NOREPLACE here) -> link(tmp, final) + unlink(tmp)
//	fsync the directory                                     ("dir")
//
// Only then does Put return nil. A power loss before that leaves at worst a
// ".tmp-" file, which List skips; never a partial object under its name.
// A directory found already there (made by a process that died before its
// fsync) is fsynced into its parent once per process too, and ErrExists is
// only returned once the existing entry is durable, since a caller takes
// such an object as stored. Delete removes the
// file and fsyncs its directory.
//
// Objects written through Create (packs, streamed) go to their temp file
// with O_DIRECT in 1 MiB aligned blocks, written in the background while the
// next block fills; the unaligned tail is written through the page cache at
// the fsync (see direct.go). The commit sequence above is the same.
//
// All file system access goes through FS: OSFS in production, CrashFS in the
// power-loss tests, which drops everything not fsynced. Options.SkipSync
// removes one fsync site, for tests only, so that those tests prove each
// fsync is needed.
//
// local imports storage only; it must not import vault or anything above.
package local
