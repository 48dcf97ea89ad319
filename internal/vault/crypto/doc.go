// Package crypto owns the vault's keys and its sealed-object envelope.
//
// Key hierarchy (docs/vault-format.md, "Keys"):
//
//	passphrase --Argon2id(slot params, salt)--> KEK (32 bytes)
//	KEK --AES-256-GCM--> key slot payload = {master secret, data keys by version, current version}
//	master secret --HKDF-SHA256--> id key     (keyed BLAKE3 for blob ids; never rotated)
//	              --HKDF-SHA256--> chunker seed (gear table; never rotated)
//	              --HKDF-SHA256--> data key wrap key
//	wrap key      --AES-256-GCM--> data key objects datakeys/<v> (datakey.go)
//	data key v    --AES-256-GCM--> every sealed object, whose header names v
//
// Rotation adds a data key version as a data key object, readable through
// any slot (every slot holds the master secret), so no slot is rewritten;
// the master secret, hence ids and chunk boundaries, stays, so dedup
// survives.
//
// crypto imports nothing from the vault or above.
package crypto
