// Package s3 stores a vault under a prefix of a bucket on S3-compatible
// storage (AWS S3, MinIO, Ceph, SeaweedFS, versitygw...) with
// github.com/minio/minio-go/v7. Object "data/ab/abcd" is the key
// "PREFIX/data/ab/abcd".
//
// Put is a conditional create: PutObject with If-None-Match: * (minio-go:
// PutObjectOptions.SetMatchETagExcept("*")); objects of 128 MiB and more are
// multipart uploads whose CompleteMultipartUpload carries the condition, and
// which are aborted if anything fails. 412 PreconditionFailed becomes
// storage.ErrExists. The vault's crash safety depends on objects never being
// replaced, so Open probes it and refuses storage that lets a second put of
// a name succeed, or that does not list an object right after writing it:
//
//	put   PREFIX/locks/probe-RANDOM "probe"     must succeed
//	put   PREFIX/locks/probe-RANDOM "overwrite" must fail with 412
//	list  PREFIX/locks/probe-RANDOM            must show it at once
//	get   it                                   must still be "probe"
//	delete it
//
// Puts are retried by this package, not by minio-go, so that a retry after
// an answer lost on the way (the first attempt may have stored the object)
// that meets 412 is recognised: if the stored object holds exactly our
// bytes, the put succeeded. Reads are retried by minio-go, briefly, so that
// an unreachable endpoint fails within seconds.
//
// Errors: NoSuchKey is storage.ErrNotFound; a missing bucket, refused or
// timed-out connections, DNS failures, access denied and 5xx answers are
// storage.ErrUnavailable; all name the location ("s3://bucket/prefix").
// No error, String or log value ever contains the secret key.
//
// s3 imports storage only; it must not import vault or anything above.
package s3
