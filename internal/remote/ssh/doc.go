// Package ssh is Lifeboat's agentless transport to a host reached over SSH
// (golang.org/x/crypto/ssh, SFTP via github.com/pkg/sftp). Nothing is
// installed on the remote host: it needs a POSIX login shell for Run, GNU
// find for a precise Scan, and the SFTP subsystem for everything else.
//
// What it owns:
//
//   - Host keys: Dial accepts exactly the key recorded for the host
//     (Config.HostKey, from `lifeboat host add`, which shows Fingerprint's
//     answer first). An unknown or changed key refuses to connect with
//     lifeboat.EAuth naming the host and both fingerprints.
//
//   - Commands: Run quotes every argument for the remote shell, so argv is
//     never interpolated; secrets travel on stdin only (DESIGN.md, Secrets:
//     command lines are readable in /proc). Config.PrivateKey is a secret:
//     String, GoString and LogValue leave it out.
//
//   - Scan: one `find ROOT -printf` listing gives inode, ctime and mtime in
//     nanoseconds, size and the rest, NUL-separated so names may hold any
//     byte. Where find -printf is missing (or Config.SFTPScan is set) an SFTP
//     walk answers instead with Entry.Precise=false: no inode, no ctime,
//     whole-second mtime, so the unchanged-file rule must re-read files whose
//     mtime is within 2 s of the previous scan.
//
//   - Restore (invariant 6): SFTP has no O_NOFOLLOW, so a restore writes into
//     a fresh 0700 staging directory next to the target, lstat-checks every
//     parent of every path it creates (a symlink is never followed), creates
//     files with O_EXCL, creates symlinks last (enforced), then Swap renames
//     the staging directory into place.
//
//     Dial(ctx, Config{Addr, User, PrivateKey, HostKey})
//     st := MkdirStaging(target)          // target/../.lifeboat-staging-NAME-RAND, 0700
//     for each dir, file: WriteFile(st, rel, mode, r)   // parents lstat-checked, O_EXCL
//     for each symlink:    Symlink(st, rel, target)     // after every file
//     old := Swap(st, target, mode)       // rename target aside, rename staging in
//
// It imports internal/lifeboat (for errors) and no other Lifeboat package;
// it never imports vault, catalog, server or cli. Tests run against a real
// sshd only (scripts/test-services.sh, LIFEBOAT_TEST_SSH_*).
package ssh
