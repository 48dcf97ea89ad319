package schedule

import (
	"fmt"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the tests must not depend on the host's zoneinfo

	"github.com/google/go-cmp/cmp"
)

func mustParse(tb testing.TB, s Spec) *Schedule {
	tb.Helper()
	sc, err := Parse(s)
	if err != nil {
		tb.Fatalf("Parse(%+v): %v", s, err)
	}
	return sc
}

func mustLoadLocation(tb testing.TB, name string) *time.Location {
	tb.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		tb.Fatal(err)
	}
	return loc
}

// at parses "2006-01-02 15:04" (optionally with ":05") in zone name.
func at(tb testing.TB, zone, v string) time.Time {
	tb.Helper()
	layout := "2006-01-02 15:04"
	if len(v) > len(layout) {
		layout += ":05"
	}
	t, err := time.ParseInLocation(layout, v, mustLoadLocation(tb, zone))
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		spec Spec
		want []string // substrings of the error
	}{
		{Spec{Cron: "61 * * * *"}, []string{`invalid cron expression "61 * * * *"`}},
		{Spec{Cron: "0 2 * *"}, []string{`invalid cron expression "0 2 * *"`}},
		{Spec{Cron: "0 0 30 2 *"}, []string{`"0 0 30 2 *"`, "never fires"}},
		{Spec{Cron: "@every 1h"}, []string{`"@every 1h"`, "use every"}},
		{Spec{Cron: "TZ=Europe/Paris 0 2 * * *"}, []string{`"TZ=Europe/Paris 0 2 * * *"`}},
		{Spec{Cron: "@fortnightly"}, []string{`"@fortnightly"`}},
		{Spec{Cron: "0 2 * * *", TimeZone: "Mars/Olympus"}, []string{`unknown time zone "Mars/Olympus"`}},
		{Spec{Cron: "0 2 * * *", TimeZone: "Local"}, []string{`unknown time zone "Local"`}},
		{Spec{Cron: "0 2 * * *", Window: "25:00-03:00"}, []string{`invalid window "25:00-03:00"`, "hour 25"}},
		{Spec{Cron: "0 2 * * *", Window: "01:60-03:00"}, []string{`invalid window "01:60-03:00"`, "minute 60"}},
		{Spec{Cron: "0 2 * * *", Window: "1:00-03:00"}, []string{`invalid window "1:00-03:00"`}},
		{Spec{Cron: "0 2 * * *", Window: "01:00_03:00"}, []string{`invalid window "01:00_03:00"`}},
		{Spec{Cron: "0 2 * * *", Window: "0a:00-03:00"}, []string{`invalid window "0a:00-03:00"`}},
		{Spec{Cron: "0 2 * * *", Window: "03:00-03:00"}, []string{`invalid window "03:00-03:00"`, "start equals end"}},
		{Spec{Cron: "0 2 * * *", Every: time.Hour}, []string{"cron and every are exclusive"}},
		{Spec{}, []string{"cron or every is required"}},
		{Spec{Every: 30 * time.Second}, []string{"every must be at least 1m", "30s"}},
		{Spec{Every: -time.Hour}, []string{"every must be at least 1m", "-1h"}},
		{Spec{Every: time.Minute + time.Millisecond}, []string{"whole seconds", "1m0.001s"}},
		{Spec{Every: time.Hour, Jitter: -time.Second}, []string{"jitter must not be negative", "-1s"}},
		{Spec{Every: time.Hour, Jitter: time.Hour}, []string{"jitter 1h0m0s must be shorter than every 1h0m0s"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%+v", tt.spec), func(t *testing.T) {
			_, err := Parse(tt.spec)
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error spans lines: %q", msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
		})
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		spec Spec
		want string
	}{
		{Spec{Cron: "0 2 * * *", TimeZone: "Europe/Paris", Jitter: 10 * time.Minute, Window: "01:00-05:00"},
			"cron 0 2 * * * (Europe/Paris), jitter 10m, window 01:00-05:00"},
		{Spec{Cron: "@daily"}, "cron @daily (UTC)"},
		{Spec{Cron: "@weekly", Window: "22:00-04:00"}, "cron @weekly (UTC), window 22:00-04:00"},
		{Spec{Every: 6 * time.Hour, Jitter: 90 * time.Second}, "every 6h (UTC), jitter 1m30s"},
		{Spec{Every: 90 * time.Minute}, "every 1h30m (UTC)"},
	}
	for _, tt := range tests {
		if got := mustParse(t, tt.spec).String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

func TestNext(t *testing.T) {
	const utc, paris, ny = "UTC", "Europe/Paris", "America/New_York"
	tests := []struct {
		name  string
		spec  Spec
		after time.Time
		want  time.Time
	}{
		{"daily later today", Spec{Cron: "0 2 * * *"},
			at(t, utc, "2025-01-10 01:00"), at(t, utc, "2025-01-10 02:00")},
		{"strictly after", Spec{Cron: "0 2 * * *"},
			at(t, utc, "2025-01-10 02:00"), at(t, utc, "2025-01-11 02:00")},
		{"sub-second after a slot", Spec{Cron: "0 2 * * *"},
			at(t, utc, "2025-01-10 02:00").Add(time.Millisecond), at(t, utc, "2025-01-11 02:00")},
		{"@daily", Spec{Cron: "@daily"},
			at(t, utc, "2025-01-10 13:00"), at(t, utc, "2025-01-11 00:00")},
		{"@weekly is Sunday midnight", Spec{Cron: "@weekly"},
			at(t, utc, "2025-01-08 13:00"), at(t, utc, "2025-01-12 00:00")},
		{"@hourly", Spec{Cron: "@hourly"},
			at(t, utc, "2025-01-10 13:59:59"), at(t, utc, "2025-01-10 14:00")},
		{"month end", Spec{Cron: "0 3 31 * *"},
			at(t, utc, "2025-04-01 00:00"), at(t, utc, "2025-05-31 03:00")},
		{"cron in Paris, winter", Spec{Cron: "0 2 * * *", TimeZone: paris},
			at(t, utc, "2025-01-10 00:00"), at(t, utc, "2025-01-10 01:00")},
		{"cron in Paris, summer", Spec{Cron: "0 2 * * *", TimeZone: paris},
			at(t, utc, "2025-07-10 03:00"), at(t, utc, "2025-07-11 00:00")},
		{"cron in New York", Spec{Cron: "0 22 * * 5", TimeZone: ny},
			at(t, utc, "2025-01-10 00:00"), at(t, utc, "2025-01-11 03:00")},
		{"every 6h from the epoch", Spec{Every: 6 * time.Hour},
			at(t, utc, "2025-01-10 05:59"), at(t, utc, "2025-01-10 06:00")},
		{"every strictly after", Spec{Every: 6 * time.Hour},
			at(t, utc, "2025-01-10 06:00"), at(t, utc, "2025-01-10 12:00")},
		{"every ignores the zone", Spec{Every: 24 * time.Hour, TimeZone: paris},
			at(t, utc, "2025-01-10 12:00"), at(t, utc, "2025-01-11 00:00")},
		{"every 7m", Spec{Every: 7 * time.Minute},
			time.Unix(7*60*1000+1, 0), time.Unix(7*60*1001, 0)},
		{"every before 1970", Spec{Every: time.Hour},
			time.Unix(-5400, 0), time.Unix(-3600, 0)},
		{"in window", Spec{Every: time.Hour, Window: "01:00-05:00"},
			at(t, utc, "2025-01-10 02:10"), at(t, utc, "2025-01-10 03:00")},
		{"window end is excluded", Spec{Every: time.Hour, Window: "01:00-05:00"},
			at(t, utc, "2025-01-10 04:00"), at(t, utc, "2025-01-11 01:00")},
		{"moved to the next opening", Spec{Cron: "0 12 * * *", Window: "01:00-05:00"},
			at(t, utc, "2025-01-10 06:00"), at(t, utc, "2025-01-11 01:00")},
		{"no slot before the opening", Spec{Cron: "0 3 * * *", Window: "01:00-05:00"},
			at(t, utc, "2025-01-10 00:30"), at(t, utc, "2025-01-10 03:00")},
		{"wrapping window, evening", Spec{Cron: "*/30 * * * *", Window: "22:00-04:00"},
			at(t, utc, "2025-01-10 23:10"), at(t, utc, "2025-01-10 23:30")},
		{"wrapping window, after midnight", Spec{Cron: "*/30 * * * *", Window: "22:00-04:00"},
			at(t, utc, "2025-01-10 03:10"), at(t, utc, "2025-01-10 03:30")},
		{"wrapping window, closed at its end", Spec{Cron: "*/30 * * * *", Window: "22:00-04:00"},
			at(t, utc, "2025-01-10 03:30"), at(t, utc, "2025-01-10 22:00")},
		{"wrapping window, daytime slot moved", Spec{Cron: "0 12 * * *", Window: "22:00-04:00"},
			at(t, utc, "2025-01-10 11:00"), at(t, utc, "2025-01-10 22:00")},
		{"window in Paris", Spec{Cron: "0 12 * * *", TimeZone: paris, Window: "22:00-04:00"},
			at(t, paris, "2025-01-10 11:00"), at(t, paris, "2025-01-10 22:00")},
		{"weekly in window", Spec{Cron: "@weekly", Window: "01:00-05:00"},
			at(t, utc, "2025-01-08 13:00"), at(t, utc, "2025-01-12 01:00")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustParse(t, tt.spec).Next(tt.after, "app")
			if !got.Equal(tt.want) {
				t.Errorf("Next(%v) = %v, want %v", tt.after.UTC(), got.UTC(), tt.want.UTC())
			}
		})
	}
}

func TestNextLocation(t *testing.T) {
	s := mustParse(t, Spec{Cron: "0 2 * * *", TimeZone: "Europe/Paris"})
	got := s.Next(at(t, "UTC", "2025-01-10 00:00"), "app")
	if name := got.Location().String(); name != "Europe/Paris" {
		t.Errorf("Next is in %s, want Europe/Paris", name)
	}
}

// runs lists the runs of key in [from, to) by feeding Next its own answers.
func runs(tb testing.TB, s *Schedule, key string, from, to time.Time) []time.Time {
	tb.Helper()
	var out []time.Time
	for r := s.Next(from.Add(-time.Nanosecond), key); r.Before(to); r = s.Next(r, key) {
		if len(out) > 0 && !r.After(out[len(out)-1]) {
			tb.Fatalf("runs not increasing: %v then %v", out[len(out)-1], r)
		}
		out = append(out, r)
	}
	return out
}

func TestJitterBounds(t *testing.T) {
	tests := []struct {
		name     string
		spec     Spec
		after    time.Time
		min, max time.Time // run in [min, max)
	}{
		{"daily", Spec{Cron: "0 2 * * *", Jitter: 10 * time.Minute},
			at(t, "UTC", "2025-01-10 00:00"), at(t, "UTC", "2025-01-10 02:00"), at(t, "UTC", "2025-01-10 02:10")},
		{"capped by the window close", Spec{Cron: "50 4 * * *", Jitter: time.Hour, Window: "01:00-05:00"},
			at(t, "UTC", "2025-01-10 00:00"), at(t, "UTC", "2025-01-10 04:50"), at(t, "UTC", "2025-01-10 05:00")},
		{"from the opening", Spec{Cron: "0 12 * * *", Jitter: 30 * time.Minute, Window: "22:00-04:00"},
			at(t, "UTC", "2025-01-10 13:00"), at(t, "UTC", "2025-01-10 22:00"), at(t, "UTC", "2025-01-10 22:30")},
		{"capped by the next slot", Spec{Cron: "* * * * *", Jitter: 10 * time.Minute},
			at(t, "UTC", "2025-01-10 00:00"), at(t, "UTC", "2025-01-10 00:00"), at(t, "UTC", "2025-01-10 00:02")},
		{"interval", Spec{Every: time.Hour, Jitter: 15 * time.Minute},
			at(t, "UTC", "2025-01-10 00:30"), at(t, "UTC", "2025-01-10 01:00"), at(t, "UTC", "2025-01-10 01:15")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustParse(t, tt.spec)
			seen := map[time.Time]bool{}
			for i := range 200 {
				got := s.Next(tt.after, fmt.Sprintf("app-%03d", i))
				if got.Before(tt.min) || !got.Before(tt.max) {
					t.Fatalf("key %d: run %v outside [%v, %v)", i, got.UTC(), tt.min.UTC(), tt.max.UTC())
				}
				seen[got] = true
			}
			if len(seen) < 10 {
				t.Errorf("200 keys got only %d distinct runs", len(seen))
			}
		})
	}
}

func TestJitterDeterministic(t *testing.T) {
	spec := Spec{Cron: "0 2 * * *", TimeZone: "Europe/Paris", Jitter: time.Hour}
	after := at(t, "UTC", "2025-01-10 00:00")
	a := mustParse(t, spec).Next(after, "shop")
	b := mustParse(t, spec).Next(after, "shop") // as after a restart
	if !a.Equal(b) {
		t.Errorf("same key, two parses: %v and %v", a, b)
	}
	if c := mustParse(t, spec).Next(after, "blog"); c.Equal(a) {
		t.Errorf("keys shop and blog both run at %v", a)
	}
	// Another day gets another delay: no app is always the last.
	if d := mustParse(t, spec).Next(a, "shop"); d.Sub(a) == 24*time.Hour {
		t.Errorf("shop runs at the same offset two days in a row: %v, %v", a, d)
	}
}

// A call between a slot and the key's jittered run returns that run, and a
// call at the run moves on: no slot is lost or doubled.
func TestJitterMidSlot(t *testing.T) {
	s := mustParse(t, Spec{Cron: "0 * * * *", Jitter: 20 * time.Minute})
	const key = "app-7"
	day := at(t, "UTC", "2025-01-10 00:00")
	got := runs(t, s, key, day, day.Add(24*time.Hour))
	if len(got) != 24 {
		t.Fatalf("%d runs in a day, want 24: %v", len(got), got)
	}
	for i, r := range got {
		slot := day.Add(time.Duration(i) * time.Hour)
		if r.Before(slot) || !r.Before(slot.Add(20*time.Minute)) {
			t.Errorf("run %v not within 20m after slot %v", r, slot)
		}
		if r.After(slot) {
			if mid := s.Next(slot, key); !mid.Equal(r) {
				t.Errorf("Next(%v) = %v, want the pending run %v", slot, mid, r)
			}
		}
	}
}

func TestDue(t *testing.T) {
	s := mustParse(t, Spec{Cron: "0 * * * *", Jitter: 10 * time.Minute})
	const key = "shop"
	last := s.Next(at(t, "UTC", "2025-01-09 23:59"), key) // the 00:00 slot's run
	tests := []struct {
		name      string
		last, now time.Time
		due       bool
	}{
		{"never ran", time.Time{}, at(t, "UTC", "2025-01-10 12:00"), false},
		{"ran, next not yet due", last, last.Add(30 * time.Minute), false},
		{"one slot missed", last, last.Add(2 * time.Hour), true},
		{"a week of downtime", last, last.Add(7 * 24 * time.Hour), true},
		{"clock moved back", last, last.Add(-2 * time.Hour), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			due, next := s.Due(tt.last, tt.now, key)
			if due != tt.due {
				t.Errorf("due = %v, want %v", due, tt.due)
			}
			from := tt.now
			if tt.last.After(from) {
				from = tt.last
			}
			if want := s.Next(from, key); !next.Equal(want) {
				t.Errorf("next = %v, want %v", next, want)
			}
			if !next.After(tt.now) {
				t.Errorf("next %v not after now %v", next, tt.now)
			}
		})
	}
}

// After a week of downtime a scheduler polling every minute runs the app once
// to catch up, then on schedule: never a burst.
func TestDueCatchUpOnce(t *testing.T) {
	s := mustParse(t, Spec{Cron: "0 */6 * * *", Jitter: 10 * time.Minute})
	const key = "shop"
	last := at(t, "UTC", "2025-01-03 00:07")
	start := last.Add(7 * 24 * time.Hour).Add(time.Hour) // 01:07, five hours before the next slot
	var ran []time.Time
	for now := start; now.Before(start.Add(12 * time.Hour)); now = now.Add(time.Minute) {
		if due, next := s.Due(last, now, key); due {
			if !next.After(now) {
				t.Fatalf("due at %v with next %v", now, next)
			}
			ran = append(ran, now)
			last = now
		}
	}
	first := s.Next(start, key)
	want := []time.Time{start, first, s.Next(first, key)}
	if len(ran) != len(want) {
		t.Fatalf("ran at %v, want once at %v then at the first poll after %v", ran, want[0], want[1:])
	}
	for i, w := range want {
		if ran[i].Before(w) || !ran[i].Before(w.Add(time.Minute)) {
			t.Errorf("run %d at %v, want the first poll at or after %v", i, ran[i], w)
		}
	}
}

// A missed run is not caught up outside the window; Due points at the next
// opening instead, and reports due there.
func TestDueWindow(t *testing.T) {
	s := mustParse(t, Spec{Cron: "@weekly", Jitter: 20 * time.Minute, Window: "01:00-05:00"})
	const key = "shop"
	last := at(t, "UTC", "2025-01-05 01:03") // Sunday's run
	now := at(t, "UTC", "2025-01-13 10:00")  // Monday, missed Sunday 12th
	due, next := s.Due(last, now, key)
	if due {
		t.Fatal("due outside the window")
	}
	open := at(t, "UTC", "2025-01-14 01:00")
	if next.Before(open) || !next.Before(open.Add(20*time.Minute)) {
		t.Fatalf("next = %v, want within 20m of the opening %v", next, open)
	}
	if due, _ := s.Due(last, next, key); !due {
		t.Errorf("not due at the catch-up time %v", next)
	}
	if due, _ := s.Due(last, open.Add(-time.Minute), key); due {
		t.Errorf("due before the opening")
	}
}

func TestDST(t *testing.T) {
	const paris, ny = "Europe/Paris", "America/New_York"
	tests := []struct {
		name     string
		spec     Spec
		day      time.Time // local midnight; runs are listed over the 24 wall hours
		wantRuns []string  // in UTC
	}{
		{"spring forward, skipped time runs at the transition", Spec{Cron: "30 2 * * *", TimeZone: paris},
			at(t, paris, "2025-03-30 00:00"), []string{"2025-03-30 01:00"}},
		{"fall back, repeated time runs once", Spec{Cron: "30 2 * * *", TimeZone: paris},
			at(t, paris, "2025-10-26 00:00"), []string{"2025-10-26 00:30"}},
		{"spring forward, New York", Spec{Cron: "30 2 * * *", TimeZone: ny},
			at(t, ny, "2025-03-09 00:00"), []string{"2025-03-09 07:00"}},
		{"fall back, New York", Spec{Cron: "30 1 * * *", TimeZone: ny},
			at(t, ny, "2025-11-02 00:00"), []string{"2025-11-02 05:30"}},
		{"unaffected time on a DST day", Spec{Cron: "0 4 * * *", TimeZone: paris},
			at(t, paris, "2025-03-30 00:00"), []string{"2025-03-30 02:00"}},
		{"window opening in the gap", Spec{Cron: "0 12 * * *", TimeZone: paris, Window: "02:30-05:00"},
			at(t, paris, "2025-03-30 00:00"), []string{"2025-03-30 01:00"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustParse(t, tt.spec)
			end := tt.day.AddDate(0, 0, 1)
			var got []string
			for _, r := range runs(t, s, "app", tt.day, end) {
				got = append(got, r.UTC().Format("2006-01-02 15:04"))
			}
			if diff := cmp.Diff(tt.wantRuns, got); diff != "" {
				t.Errorf("runs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDSTRunCounts(t *testing.T) {
	const paris = "Europe/Paris"
	tests := []struct {
		name string
		spec Spec
		day  string
		want int
	}{
		{"hourly on a 23-hour day", Spec{Cron: "@hourly", TimeZone: paris}, "2025-03-30", 23},
		{"hourly on a 25-hour day", Spec{Cron: "@hourly", TimeZone: paris}, "2025-10-26", 24},
		{"quarter-hourly on a 25-hour day", Spec{Cron: "*/15 * * * *", TimeZone: paris}, "2025-10-26", 96},
		{"interval on a 25-hour day", Spec{Every: time.Hour, TimeZone: paris}, "2025-10-26", 25},
		{"daily with jitter, spring", Spec{Cron: "30 2 * * *", TimeZone: paris, Jitter: time.Hour}, "2025-03-30", 1},
		{"daily with jitter, fall", Spec{Cron: "30 2 * * *", TimeZone: paris, Jitter: time.Hour}, "2025-10-26", 1},
		{"gap window on the spring day", Spec{Cron: "0 12 * * *", TimeZone: paris, Window: "02:00-03:00"}, "2025-03-30", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustParse(t, tt.spec)
			day := at(t, paris, tt.day+" 00:00")
			if got := runs(t, s, "app", day, day.AddDate(0, 0, 1)); len(got) != tt.want {
				t.Errorf("%d runs, want %d: %v", len(got), tt.want, got)
			}
		})
	}
}

// Next never goes backwards or stalls, whatever the spec, across both DST
// transitions of a year.
func TestNextIncreasesAllYear(t *testing.T) {
	specs := []Spec{
		{Cron: "*/20 * * * *", TimeZone: "Europe/Paris", Jitter: 30 * time.Minute, Window: "22:00-04:00"},
		{Cron: "0 2 * * *", TimeZone: "America/New_York", Jitter: 2 * time.Hour, Window: "01:00-03:00"},
		{Every: 45 * time.Minute, TimeZone: "Australia/Lord_Howe", Jitter: 20 * time.Minute, Window: "01:30-02:30"},
	}
	for _, spec := range specs {
		s := mustParse(t, spec)
		from := at(t, "UTC", "2025-01-01 00:00")
		got := runs(t, s, "app", from, from.AddDate(1, 0, 0))
		if len(got) < 300 {
			t.Errorf("%v: only %d runs in a year", s, len(got))
		}
		for _, r := range got {
			if _, _, in := s.window.locate(r); !in {
				t.Errorf("%v: run %v outside the window", s, r)
			}
		}
	}
}
