package marker

import (
	"strings"
	"testing"
	"time"
)

const pt = "0123456789abcdef0123456789abcdef"

func TestRoundTrip(t *testing.T) {
	at := time.Date(2025, 3, 1, 2, 3, 4, 567890123, time.UTC)
	n, err := NewName(pt, at, Hold, [4]byte{0xde, 0xad, 0xbe, 0xef})
	if err != nil {
		t.Fatal(err)
	}
	obj := n.Object()
	if want := "markers/" + pt + "/1740794584567890123-deadbeef.hold"; obj != want {
		t.Fatalf("name %s, want %s", obj, want)
	}
	got, err := ParseName(obj)
	if err != nil || got != n {
		t.Fatalf("parse: %+v %v", got, err)
	}
	b, err := Encode(Marker{Kind: Hold, Time: at, Reason: "legal", By: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := Decode(b, n)
	if err != nil || m.Reason != "legal" || m.By != "alice" || !m.Time.Equal(at) {
		t.Fatalf("decode: %+v %v", m, err)
	}
	// The body must agree with its name.
	other := n
	other.Kind = Release
	if _, err := Decode(b, other); err == nil {
		t.Error("kind mismatch accepted")
	}
	other = n
	other.Nanos++
	if _, err := Decode(b, other); err == nil {
		t.Error("time mismatch accepted")
	}
	if _, err := NewName(pt, time.Unix(-1, 0), Delete, [4]byte{}); err == nil {
		t.Error("time before 1970 accepted")
	}
	if _, err := Encode(Marker{Kind: Delete, Reason: strings.Repeat("x", MaxText+1)}); err == nil {
		t.Error("long reason accepted")
	}
}

func TestParseNameRejects(t *testing.T) {
	for _, s := range []string{
		"",
		"points/" + pt,
		"markers/" + pt,
		"markers/" + pt + "/",
		"markers/" + strings.ToUpper(pt) + "/1740794584567890123-deadbeef.hold",
		"markers/" + pt + "/174079458456789012-deadbeef.hold",
		"markers/" + pt + "/9999999999999999999-deadbeef.hold",
		"markers/" + pt + "/1740794584567890123-deadbeeg.hold",
		"markers/" + pt + "/1740794584567890123-deadbeef.purge",
		"markers/" + pt + "/1740794584567890123-deadbeef.hold/x",
		"markers/" + pt + "/-740794584567890123-deadbeef.hold",
		"markers/" + pt + "/+740794584567890123-deadbeef.hold",
	} {
		if n, err := ParseName(s); err == nil {
			t.Errorf("ParseName(%q) = %+v", s, n)
		}
	}
}

func FuzzParseName(f *testing.F) {
	f.Add("markers/" + pt + "/1740794584567890123-deadbeef.hold")
	f.Add("markers/" + pt + "/0000000000000000000-00000000.delete")
	f.Add("markers/x/y")
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseName(s)
		if err != nil {
			return
		}
		if n.Object() != s {
			t.Fatalf("%q parsed to %+v, which names %q", s, n, n.Object())
		}
		if !n.Kind.Valid() || n.Nanos < 0 || len(n.Point) != 32 {
			t.Fatalf("accepted %q as %+v", s, n)
		}
	})
}

func FuzzDecode(f *testing.F) {
	n, _ := NewName(pt, time.Unix(1700000000, 5), Delete, [4]byte{1, 2, 3, 4})
	b, _ := Encode(Marker{Kind: Delete, Time: n.Time(), Reason: "retention", By: "policy"})
	f.Add(b, "delete", int64(1700000000000000005))
	f.Add([]byte(`{"kind":"hold","time":"1970-01-01T00:00:00Z"}`), "hold", int64(0))
	f.Add([]byte(`{"kind":"hold","time":"1970-01-01T00:00:00Z","x":1}`), "hold", int64(0))
	f.Fuzz(func(t *testing.T, b []byte, kind string, ns int64) {
		name := Name{Point: pt, Nanos: ns, Rand: "01020304", Kind: Kind(kind)}
		m, err := Decode(b, name)
		if err != nil {
			return
		}
		if m.Kind != name.Kind || !m.Kind.Valid() || m.Time.UnixNano() != ns || len(m.Reason) > MaxText || len(m.By) > MaxText {
			t.Fatalf("accepted %q as %+v for %+v", b, m, name)
		}
		// What decodes re-encodes and decodes the same.
		b2, err := Encode(m)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", m, err)
		}
		m2, err := Decode(b2, name)
		if err != nil || m2.Kind != m.Kind || !m2.Time.Equal(m.Time) || m2.Reason != m.Reason || m2.By != m.By {
			t.Fatalf("round trip %+v -> %+v %v", m, m2, err)
		}
	})
}
