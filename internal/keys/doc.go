// Package keys holds the server's master key and seals the catalog's
// secrets under it (DESIGN.md, "Secrets"): vault passphrases, and later
// database passwords, SSH keys and S3 credentials. The master key is separate
// from every vault's keys: losing the catalog never exposes a vault, and a
// vault's passphrase is readable only with the master key file.
//
// Sealed form: "v1:" + base64(nonce || AES-256-GCM(plaintext, AD = name)),
// bound to the secret's name, so a sealed value moved to another name does
// not open. keys imports lifeboat only.
package keys
