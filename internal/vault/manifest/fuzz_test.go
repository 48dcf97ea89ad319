package manifest

import (
	"testing"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/vault/blob"
)

func TestRoundTripAndChecks(t *testing.T) {
	id := NewID(time.Unix(1700000000, 0))
	if !ValidID(id) {
		t.Fatalf("bad id %s", id)
	}
	p := &Point{Version: Version, ID: id, Root: blob.ID{1}, Components: []Component{{Name: "app", Kind: "files", Source: "/srv/app"}}}
	b, err := Encode(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(b, id); err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(b, NewID(time.Now())); err == nil {
		t.Error("manifest accepted under another id")
	}
	p.Components = append(p.Components, Component{Name: "app"})
	b, _ = Encode(p)
	if _, err := Decode(b, id); err == nil {
		t.Error("duplicate component accepted")
	}
	if a, c := NewID(time.Unix(1, 0)), NewID(time.Unix(1, 0)); a[:8] == c[:8] {
		t.Error("short ids collide")
	}
}

func FuzzDecode(f *testing.F) {
	id := "0123456789abcdef0123456789abcdef"
	b, _ := Encode(&Point{Version: Version, ID: id, Root: blob.ID{1}})
	f.Add(b)
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Decode(b, id)
		if err != nil {
			return
		}
		if p.ID != id || p.Root.IsZero() {
			t.Fatalf("accepted bad manifest %+v", p)
		}
	})
}
