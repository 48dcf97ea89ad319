package config

import (
	"encoding/json"
	"fmt"
	"math"
	"path"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Kind is the syntax of a config file.
type Kind string

// The supported kinds of config file.
const (
	KindEnv  Kind = "env"
	KindJSON Kind = "json"
	KindYAML Kind = "yaml"
)

// KindOf returns the kind of a config file from its name (a path is fine):
// env for ".env", "*.env" and ".env.*" (".env.production"), json for
// "*.json", yaml for "*.yaml" and "*.yml", ignoring case. Anything else is an
// error naming the file and the supported kinds.
func KindOf(name string) (Kind, error) {
	base := strings.ToLower(path.Base(strings.ReplaceAll(name, `\`, "/")))
	switch {
	case base == ".env" || strings.HasSuffix(base, ".env") || strings.HasPrefix(base, ".env."):
		return KindEnv, nil
	case strings.HasSuffix(base, ".json"):
		return KindJSON, nil
	case strings.HasSuffix(base, ".yaml") || strings.HasSuffix(base, ".yml"):
		return KindYAML, nil
	}
	return "", fmt.Errorf("config file %s: unknown kind (supported: .env, name.env, .env.name, .json, .yaml, .yml)", name)
}

// ParseFile parses a config file with the parser its name calls for (see
// KindOf).
func ParseFile(name string, data []byte) (Settings, error) {
	kind, err := KindOf(name)
	if err != nil {
		return nil, err
	}
	switch kind {
	case KindEnv:
		return ParseEnv(name, data)
	case KindJSON:
		return ParseJSON(name, data)
	default:
		return ParseYAML(name, data)
	}
}

// FromInline turns inline settings, as decoded from an app's YAML or JSON
// definition, into Settings. Values may be string, bool, any integer or
// float type, json.Number, nil, map[string]any, map[any]any and []any;
// maps and lists are flattened like files. Integers are written in decimal,
// floats in the shortest form that reads back the same ("2.5", "1e+21"); NaN
// and infinities are refused. Errors name the key (keys are not secret) and
// never the value.
func FromInline(m map[string]any) (Settings, error) {
	b := newBuilder("inline settings")
	if err := inline(b, "", m, 0); err != nil {
		return nil, err
	}
	return b.settings(), nil
}

func inline(b *builder, key string, v any, depth int) error {
	fail := func(msg string) error {
		if key == "" {
			return fmt.Errorf("inline settings: %s", msg)
		}
		return fmt.Errorf("inline setting %q: %s", key, msg)
	}
	if depth > maxDepth {
		return fail(fmt.Sprintf("nested deeper than %d levels", maxDepth))
	}
	leaf := func(t Type, val string) error {
		if !utf8.ValidString(val) {
			return fail("invalid UTF-8")
		}
		if key == "" {
			return fail("empty key")
		}
		if _, dup := b.at[key]; dup {
			return fail("defined twice (keys are flattened with '.' and [i])")
		}
		return b.add(Setting{Key: key, Type: t, Value: val}, func() (int, int) { return 0, 0 })
	}
	switch v := v.(type) {
	case nil:
		return leaf(TypeNull, "")
	case string:
		return leaf(TypeString, v)
	case bool:
		return leaf(TypeBool, strconv.FormatBool(v))
	case json.Number:
		if !isJSONNumber(string(v)) {
			return fail("invalid number")
		}
		return leaf(TypeNumber, string(v))
	case float64:
		return float(leaf, fail, v, 64)
	case float32:
		return float(leaf, fail, float64(v), 32)
	case int, int8, int16, int32, int64:
		return leaf(TypeNumber, strconv.FormatInt(reflect.ValueOf(v).Int(), 10))
	case uint, uint8, uint16, uint32, uint64, uintptr:
		return leaf(TypeNumber, strconv.FormatUint(reflect.ValueOf(v).Uint(), 10))
	case map[string]any:
		for _, k := range sortedKeys(v) {
			if err := inline(b, joinKey(key, k), v[k], depth+1); err != nil {
				return err
			}
		}
		return nil
	case map[any]any:
		s := make(map[string]any, len(v))
		for k, e := range v {
			ks := fmt.Sprint(k)
			switch k.(type) {
			case string, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
			case nil:
				ks = "null"
			default:
				return fail(fmt.Sprintf("unsupported key type %T", k))
			}
			if _, dup := s[ks]; dup {
				return fail(fmt.Sprintf("key %q given twice", ks))
			}
			s[ks] = e
		}
		return inline(b, key, s, depth)
	case []any:
		for i, e := range v {
			if err := inline(b, indexKey(key, i), e, depth+1); err != nil {
				return err
			}
		}
		return nil
	default:
		return fail(fmt.Sprintf("unsupported value type %T", v))
	}
}

func float(leaf func(Type, string) error, fail func(string) error, f float64, bits int) error {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return fail("NaN and infinite numbers are not supported")
	}
	return leaf(TypeNumber, strconv.FormatFloat(f, 'g', -1, bits))
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
