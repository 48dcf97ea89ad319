// Package testenv lets tests that need a real service (an S3-compatible
// server today; PostgreSQL, MariaDB, OpenSSH and Chromium later) find it
// through LIFEBOAT_TEST_* environment variables, which
// scripts/test-services.sh writes to $STATE/env. Without them such a test
// skips, so `go test ./...` works anywhere; with LIFEBOAT_TEST_NO_SKIP=1
// (set by .ci/run) it fails instead, so CI can never go green by skipping.
//
//	env := testenv.Require(t, "LIFEBOAT_TEST_S3_ENDPOINT", "LIFEBOAT_TEST_S3_BUCKET")
//	endpoint := env["LIFEBOAT_TEST_S3_ENDPOINT"]
//
// testenv imports the standard library only, and only test code imports it.
package testenv
