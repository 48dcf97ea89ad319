#!/usr/bin/env bash
# fuzz.sh [DURATION] — run every fuzz target of the decoders of stored bytes
# for DURATION each (default 30s). Crashers land in testdata/fuzz/ of the
# package; commit them so they stay regression tests.
set -euo pipefail
cd "$(dirname "$0")/.."
d=${1:-30s}
for t in \
	internal/vault/pack:FuzzDecodeEntries internal/vault/pack:FuzzParseTrailer \
	internal/vault/index:FuzzDecode internal/vault/tree:FuzzDecode \
	internal/vault/manifest:FuzzDecode internal/vault/crypto:FuzzParseSlot \
	internal/vault/crypto:FuzzOpen internal/vault/compress:FuzzDecompress \
	internal/vault/chunker:FuzzChunker; do
	pkg=${t%%:*} fn=${t##*:}
	echo "== $pkg $fn"
	go test "./$pkg" -run '^$' -fuzz "^$fn\$" -fuzztime "$d"
done
