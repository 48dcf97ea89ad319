package manifest

import (
	"encoding/json"
	"strings"
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

// Names and sources that are not UTF-8 survive the manifest; readers
// without the raw fields see the U+FFFD form.
func TestComponentKeepsBytesThatAreNotUTF8(t *testing.T) {
	p := &Point{Version: Version, ID: strings.Repeat("a", 32), Root: blob.ID{1}, Components: []Component{
		{Name: "src\xff", Kind: "files", Source: "/srv/\xfe/src\xff"},
		{Name: "plain", Kind: "files", Source: "/srv/plain"},
	}}
	b, err := Encode(p)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(b, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range back.Components {
		if c.Name != p.Components[i].Name || c.Source != p.Components[i].Source {
			t.Errorf("component %d back as %q %q, want %q %q", i, c.Name, c.Source, p.Components[i].Name, p.Components[i].Source)
		}
	}
	if strings.Count(string(b), `"name_raw"`) != 1 || strings.Count(string(b), `"source_raw"`) != 1 {
		t.Errorf("raw fields written for valid UTF-8 too, or missing: %s", b)
	}
	var old struct {
		Components []struct{ Name, Source string }
	}
	if err := json.Unmarshal(b, &old); err != nil || old.Components[0].Source != "/srv/\uFFFD/src\uFFFD" {
		t.Errorf("an older reader sees %+v, %v", old, err)
	}
}
