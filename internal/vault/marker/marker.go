// Package marker encodes point markers: soft deletion, undeletion, holds and
// their release, stored beside the manifests so that the vault alone says
// which points are deleted or held.
//
//	name = markers/<point id>/<unix nanoseconds, 19 digits>-<8 hex>.<kind>
//	body = sealed JSON {"kind", "time", "reason", "by"}, context "marker <name>"
//
// Markers are never overwritten: a later marker of the opposite kind undoes
// an earlier one, and the newest of each pair (delete/undelete, hold/release)
// decides. The time in the name must equal the time in the body, and the kind
// in the name the kind in the body; the AEAD context binds the body to the
// name. marker imports the standard library only.
package marker

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Kind is what a marker does.
type Kind string

const (
	Delete   Kind = "delete"   // soft delete: restorable until the retention ends
	Undelete Kind = "undelete" // cancels an earlier delete
	Hold     Kind = "hold"     // the point is never purged, and cannot be deleted
	Release  Kind = "release"  // cancels an earlier hold
)

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool { return k == Delete || k == Undelete || k == Hold || k == Release }

// Prefix is where markers live.
const Prefix = "markers/"

// MaxText bounds a marker's reason and author.
const MaxText = 1024

// Marker is a marker's body.
type Marker struct {
	Kind   Kind      `json:"kind"`
	Time   time.Time `json:"time"` // the server's clock when it was written
	Reason string    `json:"reason,omitempty"`
	By     string    `json:"by,omitempty"`
}

// Name is a parsed marker object name.
type Name struct {
	Point string // 32 hex
	Nanos int64  // unix nanoseconds, as in the body's time
	Rand  string // 8 hex: orders markers written in the same nanosecond
	Kind  Kind
}

// Time returns the name's time.
func (n Name) Time() time.Time { return time.Unix(0, n.Nanos).UTC() }

// Object is the storage object name.
func (n Name) Object() string {
	return fmt.Sprintf("%s%s/%019d-%s.%s", Prefix, n.Point, n.Nanos, n.Rand, n.Kind)
}

// Less orders markers of one point: by time, then by the random part.
func (n Name) Less(o Name) bool {
	if n.Nanos != o.Nanos {
		return n.Nanos < o.Nanos
	}
	return n.Rand < o.Rand
}

// Context is the AEAD context of a marker's body.
func Context(object string) string { return "marker " + object }

// NewName names a new marker; rnd is 4 random bytes.
func NewName(point string, t time.Time, kind Kind, rnd [4]byte) (Name, error) {
	if !validPoint(point) {
		return Name{}, fmt.Errorf("marker: bad point id %q", point)
	}
	if !kind.Valid() {
		return Name{}, fmt.Errorf("marker: unknown kind %q", kind)
	}
	ns := t.UnixNano()
	if t.Before(time.Unix(0, 0)) || ns < 0 {
		return Name{}, fmt.Errorf("marker: time %v before 1970", t)
	}
	return Name{Point: point, Nanos: ns, Rand: hex.EncodeToString(rnd[:]), Kind: kind}, nil
}

// ParseName parses a marker object name (with its "markers/" prefix).
func ParseName(object string) (Name, error) {
	bad := func(why string) (Name, error) { return Name{}, fmt.Errorf("not a marker name: %q: %s", object, why) }
	rest, ok := strings.CutPrefix(object, Prefix)
	if !ok {
		return bad("no " + Prefix + " prefix")
	}
	point, file, ok := strings.Cut(rest, "/")
	if !ok || !validPoint(point) {
		return bad("bad point id")
	}
	// 19 digits, '-', 8 hex, '.', kind
	if len(file) < 19+1+8+1+1 || file[19] != '-' || file[28] != '.' {
		return bad("want <19 digits>-<8 hex>.<kind>")
	}
	digits, rnd, kind := file[:19], file[20:28], Kind(file[29:])
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return bad("time is not 19 digits")
		}
	}
	ns, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return bad("time out of range")
	}
	if !lowerHex(rnd) {
		return bad("random part is not 8 lowercase hex digits")
	}
	if !kind.Valid() {
		return bad("unknown kind")
	}
	return Name{Point: point, Nanos: ns, Rand: rnd, Kind: kind}, nil
}

// Encode encodes a marker's body.
func Encode(m Marker) ([]byte, error) {
	if err := check(m); err != nil {
		return nil, err
	}
	m.Time = m.Time.UTC()
	return json.Marshal(m)
}

// Decode decodes a marker's body and checks it against its name.
func Decode(b []byte, n Name) (Marker, error) {
	var m Marker
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&m); err != nil {
		return Marker{}, fmt.Errorf("marker: %w", err)
	}
	if d.More() {
		return Marker{}, fmt.Errorf("marker: trailing data")
	}
	if err := check(m); err != nil {
		return Marker{}, err
	}
	if m.Kind != n.Kind {
		return Marker{}, fmt.Errorf("marker: kind %q, its name says %q", m.Kind, n.Kind)
	}
	if m.Time.UnixNano() != n.Nanos || m.Time.Before(time.Unix(0, 0)) {
		return Marker{}, fmt.Errorf("marker: time %v, its name says %v", m.Time, n.Time())
	}
	return m, nil
}

func check(m Marker) error {
	if !m.Kind.Valid() {
		return fmt.Errorf("marker: unknown kind %q", m.Kind)
	}
	for _, s := range []string{m.Reason, m.By} {
		if len(s) > MaxText || !utf8.ValidString(s) {
			return fmt.Errorf("marker: reason or author longer than %d bytes or not UTF-8", MaxText)
		}
	}
	return nil
}

func validPoint(id string) bool { return len(id) == 32 && lowerHex(id) }

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return s != ""
}
