// Package vault is the storage engine: it turns file trees into encrypted,
// deduplicated blobs in pack files on a storage.Backend, and back.
//
// Backup (pipelined; memory bounded by the job queue, two open packs, the
// listings being walked (walkListBudget) and the parent trees loaded ahead
// of the walk (prefetchBudget); the in-memory index grows with the vault):
//
//	walker (one goroutine): readdir, lstat, exclude; unchanged file (same
//	    size, mtime, inode, ctime as in the parent point, and last changed
//	    more than racySlack before the parent started: a same-size rewrite
//	    within one timestamp tick changes none of them) → reuse its
//	    extents, read nothing; otherwise → job queue
//	workers (GOMAXPROCS): read → chunk (keyed FastCDC) → id = keyed BLAKE3 →
//	    dedup (index, session) → zstd unless incompressible → AES-GCM → pack
//	directory futures: when all children are done, encode the tree → blob
//	uploaders (2): full pack → Put (durable) → entries kept for the index
//	finish: last packs → wait → index object → manifest (last) → re-list
//	    tombstones; a condemned pack referenced → delete manifest, fail
//
// Restore: resolve the path → create directories and empty files (O_EXCL,
// O_NOFOLLOW, relative to directory descriptors) → group blobs by pack →
// read each pack once in merged ranges, in parallel → pwrite into files →
// per file: fchown, fchmod, futimens → hard links → symlinks → directory
// metadata children first.
//
// Garbage collection (gc.go; docs/vault-format.md): markers → purge points
// soft-deleted past the retention (server clock) → list packs, tombstones →
// list manifests, then indexes → walk trees: referenced packs → remove their
// tombstones → condemn unreferenced packs older than the grace period
// (storage clock) → delete packs whose tombstone, listed before the
// manifests, is older than the grace period; tombstones stay. Point markers
// (markers.go, package marker) record soft deletes and holds in the vault.
//
// Keys (datakeys.go, keyslots.go): a key slot gives the master secret and
// the data keys it holds; every datakeys/<v> object adds one more, wrapped
// under the master secret, so rotating the data key rewrites no slot. The
// current (highest) version seals new writes; one write session seals its
// packs and index under one version.
//
// Re-encryption (reencrypt.go, reseal.go): like the collector, list packs
// and tombstones, then manifests, then indexes; walk trees → referenced
// blobs → per batch of packs under an old key: copy referenced blobs with
// no indexed copy under a recent key into new packs → index → condemn the
// old packs (the collector deletes them after its grace period) → manifests,
// markers, audit segments: write <name>.<version> under the current key,
// then delete the older copies (a manifest copy is withdrawn if the point's
// purge tombstone appeared).
//
// vault imports storage and its own subpackages, never catalog, server,
// access or jobs: storage plus the key must be enough to restore.
package vault
