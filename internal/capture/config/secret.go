package config

import (
	"fmt"
	"log/slog"
)

// Secret is a secret value that redacts itself: printing it with any fmt
// verb, logging it with slog, or encoding it as JSON or text gives
// "[redacted]". Reveal (or a string conversion) is the one way to read it,
// and should appear only where the value is handed to what needs it.
type Secret string

// Reveal returns the secret value.
func (s Secret) Reveal() string { return string(s) }

// String returns "[redacted]".
func (s Secret) String() string { return redacted }

// GoString returns "[redacted]", for %#v.
func (s Secret) GoString() string { return redacted }

// Format writes "[redacted]" for every verb and flag.
func (s Secret) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue logs "[redacted]".
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText returns "[redacted]", so JSON, YAML and slog's JSON handler
// never see the value either.
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }
