// Package compress frames blob payloads: one codec byte, then the payload.
//
//	0x00 raw      payload stored as is
//	0x01 zstd     a zstd frame (github.com/klauspost/compress/zstd)
//
// Compress tries zstd on a sample first and stores incompressible data raw,
// so encrypted uploads and media cost almost no compression CPU.
package compress
