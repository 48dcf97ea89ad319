package config

import "sort"

// Shown is a setting as every API answer, log, audit event and CLI output
// may show it: Value is set only when the key is public. Hash (see Hasher)
// lets a reader tell changed from unchanged without the value.
type Shown struct {
	Key    string  `json:"key"`
	Type   Type    `json:"type"`
	Value  *string `json:"value,omitempty"`
	Secret bool    `json:"secret"`
	Hash   string  `json:"hash"`
}

// Show masks settings for output. h may be nil, which leaves Hash empty.
func Show(s Settings, p Public, h *Hasher) []Shown {
	out := make([]Shown, 0, len(s))
	for _, st := range s {
		v := Shown{Key: st.Key, Type: st.Type, Secret: !p.Match(st.Key)}
		if !v.Secret {
			val := st.Value
			v.Value = &val
		}
		if h != nil {
			v.Hash = h.Sum(st)
		}
		out = append(out, v)
	}
	return out
}

// The operations of a Change.
const (
	OpAdded   = "added"
	OpRemoved = "removed"
	OpChanged = "changed"
)

// Change is one difference between two sets of settings. Old and New are set
// only for public keys; OldType and NewType are always set where the setting
// exists (types are not secret: Show shows them too), so a secret that
// changed type still says so.
type Change struct {
	Key     string  `json:"key"`
	Op      string  `json:"op"`
	Secret  bool    `json:"secret"`
	OldType Type    `json:"old_type,omitempty"`
	NewType Type    `json:"new_type,omitempty"`
	Old     *string `json:"old,omitempty"`
	New     *string `json:"new,omitempty"`
}

// Diff returns what changed from old to new, sorted by key: added, removed,
// and changed (same key, different type or value). Inputs should have unique
// keys, as every parser returns them. Secret values never appear in a Change.
func Diff(old, new Settings, p Public) []Change {
	old, new = sorted(old), sorted(new)
	var out []Change
	i, j := 0, 0
	for i < len(old) || j < len(new) {
		var c Change
		switch {
		case j == len(new) || i < len(old) && old[i].Key < new[j].Key:
			c = Change{Key: old[i].Key, Op: OpRemoved, OldType: old[i].Type}
			c.Old = strPtr(old[i].Value)
			i++
		case i == len(old) || new[j].Key < old[i].Key:
			c = Change{Key: new[j].Key, Op: OpAdded, NewType: new[j].Type}
			c.New = strPtr(new[j].Value)
			j++
		default:
			o, n := old[i], new[j]
			i++
			j++
			if o.Type == n.Type && o.Value == n.Value {
				continue
			}
			c = Change{Key: o.Key, Op: OpChanged, OldType: o.Type, NewType: n.Type, Old: strPtr(o.Value), New: strPtr(n.Value)}
		}
		if c.Secret = !p.Match(c.Key); c.Secret {
			c.Old, c.New = nil, nil
		}
		out = append(out, c)
	}
	return out
}

// sorted returns s sorted by key, copying it only if it is not already.
func sorted(s Settings) Settings {
	less := func(i, j int) bool { return s[i].Key < s[j].Key }
	if sort.SliceIsSorted(s, less) {
		return s
	}
	s = append(Settings(nil), s...)
	sort.SliceStable(s, less)
	return s
}

func strPtr(s string) *string { return &s }
