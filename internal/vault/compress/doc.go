// Package compress frames blob payloads: one codec byte, then the payload.
//
//	0x00 raw      payload stored as is
//	0x01 zstd     a zstd frame (github.com/klauspost/compress/zstd)
//
// Compress tries zstd on a sample first and stores incompressible data raw,
// so encrypted uploads and media cost almost no compression CPU. The level is
// zstd's fastest: on the benchmark dataset the default level saved 0.6% of
// the vault for 19% more CPU.
package compress
