package ssh

import (
	"strings"
	"testing"
)

func TestParseTime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1795563237.8411755870", 1795563237841175587, true},
		{"1234567890.1234567890", 1234567890123456789, true},
		{"5", 5e9, true},
		{"0.5", 5e8, true},
		{"-1.5000000000", -15e8, true},
		{"x.1", 0, false},
		{"1.x", 0, false},
	} {
		got, err := parseTime(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseTime(%q) = %d, %v; want %d ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseFindMalformed(t *testing.T) {
	for _, in := range []string{
		"1 2.0 3.0 4 644 f 1 0 0\x00/r\x00",             // truncated record
		"1 2.0 3.0 4 644 f 1 0\x00/r\x00\x00",           // missing field
		"1 2.0 3.0 4 999 f 1 0 0\x00/r\x00\x00",         // mode not octal
		"1 2.0 3.0 4 644 f 1 0 0\x00/elsewhere\x00\x00", // not under root
	} {
		if _, err := parseFind(strings.NewReader(in), "/r"); err == nil {
			t.Errorf("parseFind(%q) succeeded", in)
		}
	}
	got, err := parseFind(strings.NewReader("7 2.0 3.5 4 4755 l 1 0 0\x00/r/a\nb\x00t a\x00"), "/r")
	if err != nil || len(got) != 1 || got[0].Path != "a\nb" || got[0].Target != "t a" || got[0].Mode != 0o4755 || got[0].MTime != 35e8 {
		t.Errorf("parseFind: %+v %v", got, err)
	}
}
