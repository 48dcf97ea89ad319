package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestSecretRedacts(t *testing.T) {
	const value = "hunter2-secret"
	s := Secret(value)
	wrapped := struct {
		Name string
		Pass Secret
	}{"db", s}
	for _, format := range []string{"%v", "%s", "%+v", "%#v", "%q", "%x", "%10s", "%d"} {
		for _, arg := range []any{s, &s, wrapped, []Secret{s}} {
			got := fmt.Sprintf(format, arg)
			if strings.Contains(got, "hunter") || strings.Contains(got, fmt.Sprintf("%x", value)) {
				t.Errorf("Sprintf(%q, %T) = %q leaks", format, arg, got)
			}
		}
	}
	if got := fmt.Sprint(s); got != "[redacted]" {
		t.Errorf("Sprint = %q", got)
	}
	if s.Reveal() != value {
		t.Error("Reveal lost the value")
	}

	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("connect", "password", s, "group", slog.GroupValue(slog.Any("p", s)), slog.Any("struct", wrapped))
	log.Info("setting", "setting", str("DB_PASSWORD", value))
	if strings.Contains(buf.String(), "hunter") {
		t.Errorf("slog JSON leaks: %s", buf.String())
	}
	if !strings.Contains(buf.String(), `"password":"[redacted]"`) {
		t.Errorf("slog JSON: %s", buf.String())
	}
	js, _ := json.Marshal(wrapped)
	if strings.Contains(string(js), "hunter") {
		t.Errorf("JSON leaks: %s", js)
	}
}

func TestSettingPrintsNoValue(t *testing.T) {
	st := str("DB_PASSWORD", "hunter2-secret")
	for _, format := range []string{"%v", "%s", "%+v", "%#v", "%q"} {
		for _, arg := range []any{st, Settings{st}, &st} {
			if got := fmt.Sprintf(format, arg); strings.Contains(got, "hunter") || !strings.Contains(got, "DB_PASSWORD") {
				t.Errorf("Sprintf(%q, %T) = %q", format, arg, got)
			}
		}
	}
}
