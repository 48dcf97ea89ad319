package retention

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Paris without depending on the host's zoneinfo
)

// at parses "2006-01-02 15:04" in UTC; it panics on a bad literal, like
// regexp.MustCompile, so tables stay short.
func at(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04", s)
	if err != nil {
		panic(err)
	}
	return t
}

func full(id, ts string) Point    { return Point{ID: id, Time: at(ts), Complete: true} }
func partial(id, ts string) Point { return Point{ID: id, Time: at(ts)} }
func held(p Point) Point          { p.Hold = true; return p }

// render turns decisions into lines that read well in a diff:
// "a keep: last 1; newest complete point" or "b drop".
func render(ds []Decision) []string {
	var out []string
	for _, d := range ds {
		if d.Keep {
			out = append(out, d.Point.ID+" keep: "+strings.Join(d.Reasons, "; "))
		} else {
			out = append(out, d.Point.ID+" drop")
		}
	}
	return out
}

// diffLines returns "" if want and got are equal, else both listed line by
// line with "-" (want only) and "+" (got only) marks. go.sum has no go-cmp
// entry yet, so the package keeps to the standard library.
func diffLines(want, got []string) string {
	if slices.Equal(want, got) {
		return ""
	}
	var b strings.Builder
	for i := range max(len(want), len(got)) {
		var w, g string
		if i < len(want) {
			w = want[i]
		}
		if i < len(got) {
			g = got[i]
		}
		switch {
		case i >= len(want):
			fmt.Fprintf(&b, "+ %s\n", g)
		case i >= len(got):
			fmt.Fprintf(&b, "- %s\n", w)
		case w == g:
			fmt.Fprintf(&b, "  %s\n", w)
		default:
			fmt.Fprintf(&b, "- %s\n+ %s\n", w, g)
		}
	}
	return b.String()
}

func mustLoadLocation(t testing.TB, name string) *time.Location {
	t.Helper()
	if name == "" {
		return time.UTC
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("load location %s: %v", name, err)
	}
	return loc
}

func TestApply(t *testing.T) {
	tests := []struct {
		name   string
		points []Point
		rules  Rules
		loc    string // "" is UTC
		want   []string
	}{
		{
			name:  "empty input",
			rules: Rules{Last: 3},
			want:  nil,
		},
		{
			name:  "empty rules keep every point",
			rules: Rules{},
			points: []Point{
				full("a", "2026-11-20 10:00"),
				partial("b", "2026-11-19 10:00"),
				full("c", "2026-11-18 10:00"),
				partial("d", "2026-01-01 10:00"),
			},
			want: []string{
				"a keep: newest complete point; no rules (keep all)",
				"b keep: no rules (keep all)",
				"c keep: no rules (keep all)",
				"d keep: no rules (keep all)",
			},
		},
		{
			name:  "invalid rules keep every point",
			rules: Rules{Last: -1},
			points: []Point{
				full("a", "2026-11-20 10:00"),
				full("b", "2026-11-19 10:00"),
			},
			want: []string{
				"a keep: newest complete point; invalid rules (keep all)",
				"b keep: invalid rules (keep all)",
			},
		},
		{
			name:  "last",
			rules: Rules{Last: 3},
			points: []Point{
				full("p1", "2026-11-01 10:00"),
				full("p2", "2026-11-02 10:00"),
				full("p3", "2026-11-03 10:00"),
				full("p4", "2026-11-04 10:00"),
				full("p5", "2026-11-05 10:00"),
			},
			want: []string{
				"p5 keep: last 1; newest complete point",
				"p4 keep: last 2",
				"p3 keep: last 3",
				"p2 drop",
				"p1 drop",
			},
		},
		{
			name:  "last counts complete points only; partial points between kept ones stay",
			rules: Rules{Last: 2},
			points: []Point{
				partial("p4", "2026-11-04 10:00"),
				full("c3", "2026-11-03 10:00"),
				partial("p2", "2026-11-02 10:00"),
				full("c1", "2026-11-01 10:00"),
				partial("p0", "2026-10-31 10:00"),
				full("c0", "2026-10-30 10:00"),
			},
			want: []string{
				"p4 keep: partial (not counted)",
				"c3 keep: last 1; newest complete point",
				"p2 keep: partial (not counted)",
				"c1 keep: last 2",
				"p0 drop",
				"c0 drop",
			},
		},
		{
			name:  "within is measured from the newest complete point, not from now",
			rules: Rules{Within: 48 * time.Hour},
			points: []Point{
				// The app stopped three weeks before any plausible "now";
				// only partial points came after.
				partial("late", "2026-10-22 12:00"),
				full("c4", "2026-10-01 12:00"),
				full("c3", "2026-10-01 00:00"),
				full("c2", "2026-09-29 12:00"), // exactly at the cut-off: kept
				full("c1", "2026-09-29 11:59"),
			},
			want: []string{
				"late keep: partial (not counted)",
				"c4 keep: within 48h0m0s; newest complete point",
				"c3 keep: within 48h0m0s",
				"c2 keep: within 48h0m0s",
				"c1 drop",
			},
		},
		{
			name:  "hourly",
			rules: Rules{Hourly: 2},
			points: []Point{
				full("a", "2026-11-24 10:40"),
				full("b", "2026-11-24 10:20"),
				full("c", "2026-11-24 10:00"),
				full("d", "2026-11-24 09:40"),
				full("e", "2026-11-24 09:00"),
				full("f", "2026-11-24 08:50"),
			},
			want: []string{
				"a keep: hourly 2026-11-24 10:00 +00:00; newest complete point",
				"b drop",
				"c drop",
				"d keep: hourly 2026-11-24 09:00 +00:00",
				"e drop",
				"f drop",
			},
		},
		{
			name:  "daily",
			rules: Rules{Daily: 2},
			points: []Point{
				full("a", "2026-11-24 18:00"),
				full("b", "2026-11-24 06:00"),
				full("c", "2026-11-23 20:00"),
				full("d", "2026-11-22 20:00"),
			},
			want: []string{
				"a keep: daily 2026-11-24; newest complete point",
				"b drop",
				"c keep: daily 2026-11-23",
				"d drop",
			},
		},
		{
			name:  "daily counts distinct buckets, not calendar days",
			rules: Rules{Daily: 2},
			points: []Point{
				full("a", "2026-11-24 18:00"),
				full("b", "2026-11-20 06:00"),
				full("c", "2026-11-01 20:00"),
			},
			want: []string{
				"a keep: daily 2026-11-24; newest complete point",
				"b keep: daily 2026-11-20",
				"c drop",
			},
		},
		{
			name:  "weekly uses ISO weeks across the year boundary",
			rules: Rules{Weekly: 2},
			points: []Point{
				full("sun", "2027-01-03 12:00"), // Sunday of 2026-W53
				full("mon", "2026-12-28 12:00"), // Monday of 2026-W53
				full("w52", "2026-12-27 12:00"),
				full("w52b", "2026-12-21 12:00"),
				full("w51", "2026-12-20 12:00"),
			},
			want: []string{
				"sun keep: weekly 2026-W53; newest complete point",
				"mon drop",
				"w52 keep: weekly 2026-W52",
				"w52b drop",
				"w51 drop",
			},
		},
		{
			name:  "monthly",
			rules: Rules{Monthly: 2},
			points: []Point{
				full("a", "2026-11-30 12:00"),
				full("b", "2026-11-01 12:00"),
				full("c", "2026-10-31 12:00"),
				full("d", "2026-10-01 12:00"),
				full("e", "2026-09-15 12:00"),
			},
			want: []string{
				"a keep: monthly 2026-11; newest complete point",
				"b drop",
				"c keep: monthly 2026-10",
				"d drop",
				"e drop",
			},
		},
		{
			name:  "yearly",
			rules: Rules{Yearly: 3},
			points: []Point{
				full("a", "2026-06-01 12:00"),
				full("b", "2026-01-01 12:00"),
				full("c", "2025-12-31 12:00"),
				full("d", "2024-03-01 12:00"),
				full("e", "2023-01-01 12:00"),
			},
			want: []string{
				"a keep: yearly 2026; newest complete point",
				"b drop",
				"c keep: yearly 2025",
				"d keep: yearly 2024",
				"e drop",
			},
		},
		{
			name:  "rules combine and a point collects every reason",
			rules: Rules{Last: 2, Within: 12 * time.Hour, Daily: 3, Weekly: 2, Monthly: 2},
			points: []Point{
				full("a", "2026-11-25 22:00"), // Wednesday, W48
				full("b", "2026-11-25 08:00"), // 14h before a: outside within
				full("c", "2026-11-24 22:00"),
				full("d", "2026-11-22 22:00"), // Sunday, W47
				full("e", "2026-11-15 22:00"), // W46: weekly count used up
				full("f", "2026-10-31 22:00"),
			},
			want: []string{
				"a keep: last 1; within 12h0m0s; daily 2026-11-25; weekly 2026-W48; monthly 2026-11; newest complete point",
				"b keep: last 2",
				"c keep: daily 2026-11-24",
				"d keep: daily 2026-11-22; weekly 2026-W47",
				"e drop",
				"f keep: monthly 2026-10",
			},
		},
		{
			name:  "hold is always kept and does not widen the partial window",
			rules: Rules{Last: 1},
			points: []Point{
				full("a", "2026-11-05 10:00"),
				partial("g", "2026-11-04 10:00"),
				held(full("b", "2026-11-03 10:00")),
				full("d", "2026-11-02 10:00"),
				held(partial("e", "2026-11-01 10:00")),
			},
			want: []string{
				"a keep: last 1; newest complete point",
				"g drop",
				"b keep: hold",
				"d drop",
				"e keep: hold",
			},
		},
		{
			name:  "held point that the rules keep too",
			rules: Rules{Last: 1},
			points: []Point{
				held(full("a", "2026-11-05 10:00")),
				full("b", "2026-11-04 10:00"),
			},
			want: []string{
				"a keep: last 1; newest complete point; hold",
				"b drop",
			},
		},
		{
			name:  "no complete point: every partial point is kept",
			rules: Rules{Last: 1, Daily: 7},
			points: []Point{
				partial("p3", "2026-11-03 10:00"),
				partial("p2", "2026-11-02 10:00"),
				partial("p1", "2026-11-01 10:00"),
			},
			want: []string{
				"p3 keep: partial (no complete point)",
				"p2 keep: partial (no complete point)",
				"p1 keep: partial (no complete point)",
			},
		},
		{
			name:  "equal times are ordered by ID, the earlier ID counting as newer",
			rules: Rules{Last: 1},
			points: []Point{
				full("b", "2026-11-05 10:00"),
				partial("0", "2026-11-05 10:00"),
				full("a", "2026-11-05 10:00"),
				partial("c", "2026-11-05 10:00"),
			},
			want: []string{
				"0 keep: partial (not counted)",
				"a keep: last 1; newest complete point",
				"b drop",
				"c drop",
			},
		},
		{
			name:  "23:30 UTC is the next day in Europe/Paris",
			rules: Rules{Daily: 2},
			loc:   "Europe/Paris",
			points: []Point{
				full("p1", "2026-11-24 23:30"), // 2026-11-25 00:30 in Paris
				full("p2", "2026-11-24 22:30"), // 2026-11-24 23:30 in Paris
				full("p3", "2026-11-24 10:00"),
				full("p4", "2026-11-23 10:00"),
			},
			want: []string{
				"p1 keep: daily 2026-11-25; newest complete point",
				"p2 keep: daily 2026-11-24",
				"p3 drop",
				"p4 drop",
			},
		},
		{
			name:  "the same points in UTC",
			rules: Rules{Daily: 2},
			points: []Point{
				full("p1", "2026-11-24 23:30"),
				full("p2", "2026-11-24 22:30"),
				full("p3", "2026-11-24 10:00"),
				full("p4", "2026-11-23 10:00"),
			},
			want: []string{
				"p1 keep: daily 2026-11-24; newest complete point",
				"p2 drop",
				"p3 drop",
				"p4 keep: daily 2026-11-23",
			},
		},
		{
			name:  "Sunday 23:30 UTC is Monday of the next ISO week in Europe/Paris",
			rules: Rules{Weekly: 2, Monthly: 1, Yearly: 1},
			loc:   "Europe/Paris",
			points: []Point{
				full("sun", "2026-11-22 23:30"),      // Monday 2026-11-23 in Paris
				full("new-year", "2026-12-31 23:30"), // Friday 2027-01-01 in Paris, ISO week 2026-W53
			},
			want: []string{
				"new-year keep: weekly 2026-W53; monthly 2027-01; yearly 2027; newest complete point",
				"sun keep: weekly 2026-W48",
			},
		},
		{
			name:  "spring-forward day (23 hours) is one daily bucket in Europe/Paris",
			rules: Rules{Daily: 2, Hourly: 5},
			loc:   "Europe/Paris",
			points: []Point{
				full("late", "2026-03-29 21:30"),   // 23:30 CEST, 29 March
				full("after", "2026-03-29 01:00"),  // 03:00 CEST: 02:00 never happened
				full("before", "2026-03-29 00:59"), // 01:59 CET
				full("early", "2026-03-28 23:30"),  // 00:30 CET, 29 March
				full("prev", "2026-03-28 22:30"),   // 23:30 CET, 28 March
			},
			want: []string{
				"late keep: hourly 2026-03-29 23:00 +02:00; daily 2026-03-29; newest complete point",
				"after keep: hourly 2026-03-29 03:00 +02:00",
				"before keep: hourly 2026-03-29 01:00 +01:00",
				"early keep: hourly 2026-03-29 00:00 +01:00",
				"prev keep: hourly 2026-03-28 23:00 +01:00; daily 2026-03-28",
			},
		},
		{
			name:  "fall-back day: the two 02:00 hours are two hourly buckets in Europe/Paris",
			rules: Rules{Hourly: 2},
			loc:   "Europe/Paris",
			points: []Point{
				full("cet-late", "2026-10-25 01:50"),   // 02:50 CET
				full("cet-early", "2026-10-25 01:30"),  // 02:30 CET
				full("cest-late", "2026-10-25 00:30"),  // 02:30 CEST
				full("cest-early", "2026-10-25 00:10"), // 02:10 CEST
			},
			want: []string{
				"cet-late keep: hourly 2026-10-25 02:00 +01:00; newest complete point",
				"cet-early drop",
				"cest-late keep: hourly 2026-10-25 02:00 +02:00",
				"cest-early drop",
			},
		},
		{
			name:  "fall-back day (25 hours) is one daily bucket in Europe/Paris",
			rules: Rules{Daily: 2},
			loc:   "Europe/Paris",
			points: []Point{
				full("x", "2026-10-25 22:50"), // 23:50 CET, 25 October
				full("y", "2026-10-24 22:10"), // 00:10 CEST, 25 October: 25h40m earlier
				full("z", "2026-10-24 21:50"), // 23:50 CEST, 24 October
			},
			want: []string{
				"x keep: daily 2026-10-25; newest complete point",
				"y drop",
				"z keep: daily 2026-10-24",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := render(Apply(tt.points, tt.rules, mustLoadLocation(t, tt.loc)))
			if diff := diffLines(tt.want, got); diff != "" {
				t.Errorf("Apply(%+v) mismatch (-want +got):\n%s", tt.rules, diff)
			}
		})
	}
}

// TestApplyFailingApp is the scenario DESIGN.md names: an app whose backups
// fail for three weeks, writing a partial point every hour. The partial
// points must not push out a single complete point, and the newest complete
// point stays whatever the rules.
func TestApplyFailingApp(t *testing.T) {
	var points []Point
	start := at("2026-11-01 02:00")
	for d := range 10 { // complete: 1 to 10 November, 02:00
		points = append(points, Point{ID: fmt.Sprintf("c%02d", d+1), Time: start.AddDate(0, 0, d), Complete: true})
	}
	lastComplete := start.AddDate(0, 0, 9)
	const failing = 21 * 24
	for h := range failing { // then a partial point every hour for three weeks
		points = append(points, Point{ID: fmt.Sprintf("p%03d", h), Time: lastComplete.Add(time.Duration(h+1) * time.Hour)})
	}
	old := Point{ID: "old-partial", Time: at("2026-11-02 12:00")}
	points = append(points, old)

	rules := Rules{Last: 3, Within: 24 * time.Hour, Daily: 7}
	ds := Apply(points, rules, time.UTC)

	gotKept := map[string][]string{}
	partialKept := 0
	for _, d := range ds {
		switch {
		case !d.Keep:
		case d.Point.Complete:
			gotKept[d.Point.ID] = d.Reasons
		default:
			partialKept++
			if !slices.Equal(d.Reasons, []string{ReasonPartial}) {
				t.Errorf("partial %s kept for %q, want %q", d.Point.ID, d.Reasons, ReasonPartial)
			}
		}
		if d.Point.ID == old.ID && d.Keep {
			t.Errorf("partial point older than every kept complete point is kept: %q", d.Reasons)
		}
	}
	wantKept := map[string][]string{
		"c10": {"last 1", "within 24h0m0s", "daily 2026-11-10", ReasonNewestComplete},
		"c09": {"last 2", "within 24h0m0s", "daily 2026-11-09"},
		"c08": {"last 3", "daily 2026-11-08"},
		"c07": {"daily 2026-11-07"},
		"c06": {"daily 2026-11-06"},
		"c05": {"daily 2026-11-05"},
		"c04": {"daily 2026-11-04"},
	}
	if !reflect.DeepEqual(gotKept, wantKept) {
		t.Errorf("complete points kept:\n got %q\nwant %q", gotKept, wantKept)
	}
	if partialKept != failing {
		t.Errorf("kept %d partial points after the last complete one, want %d", partialKept, failing)
	}
	keep, drop := Summary(ds)
	if want := 7 + failing; keep != want || drop != 4 {
		t.Errorf("Summary = %d kept, %d dropped; want %d, 4", keep, drop, want)
	}
}

// TestApplyOrderIndependent feeds the same points in every order: the
// decisions must not change.
func TestApplyOrderIndependent(t *testing.T) {
	points := []Point{
		full("a", "2026-11-25 22:00"),
		partial("p", "2026-11-25 12:00"),
		full("b", "2026-11-25 08:00"),
		held(full("c", "2026-11-24 22:00")),
		full("d", "2026-11-22 22:00"),
		full("d2", "2026-11-22 22:00"),
		full("f", "2026-10-31 22:00"),
	}
	rules := Rules{Last: 2, Daily: 2, Weekly: 2, Monthly: 2}
	want := Apply(points, rules, time.UTC)
	if !slices.IsSortedFunc(want, func(a, b Decision) int { return comparePoints(a.Point, b.Point) }) {
		t.Fatalf("Apply result not sorted newest first: %q", render(want))
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		shuffled := slices.Clone(points)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		got := Apply(shuffled, rules, time.UTC)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Apply on %v differs (-sorted input +shuffled input):\n%s", ids(shuffled), diffLines(render(want), render(got)))
		}
	}
}

func ids(ps []Point) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.ID)
	}
	return out
}

// TestApplyInvariants checks the safety promises on random histories and
// random rules.
func TestApplyInvariants(t *testing.T) {
	paris := mustLoadLocation(t, "Europe/Paris")
	r := rand.New(rand.NewPCG(3, 4))
	base := at("2026-01-01 00:00")
	for iter := range 500 {
		n := r.IntN(60)
		points := make([]Point, n)
		for i := range points {
			points[i] = Point{
				ID:       fmt.Sprintf("p%d", r.IntN(n+1)), // duplicate IDs and times on purpose
				Time:     base.Add(time.Duration(r.IntN(400*24)) * time.Hour),
				Complete: r.IntN(3) > 0,
				Hold:     r.IntN(10) == 0,
			}
		}
		rules := Rules{
			Last: r.IntN(4), Hourly: r.IntN(4), Daily: r.IntN(4), Weekly: r.IntN(4),
			Monthly: r.IntN(4), Yearly: r.IntN(3),
			Within: time.Duration(r.IntN(4)) * 24 * time.Hour,
		}
		ds := Apply(points, rules, paris)

		if len(ds) != len(points) {
			t.Fatalf("iteration %d: %d decisions for %d points", iter, len(ds), len(points))
		}
		gotPoints := make([]Point, len(ds))
		for i, d := range ds {
			gotPoints[i] = d.Point
		}
		wantPoints := slices.Clone(points)
		slices.SortFunc(wantPoints, comparePoints)
		if !reflect.DeepEqual(gotPoints, wantPoints) {
			t.Fatalf("iteration %d: points not passed through in order:\n got %v\nwant %v", iter, gotPoints, wantPoints)
		}

		newestComplete := -1
		for i, d := range ds {
			if d.Keep != (len(d.Reasons) > 0) {
				t.Fatalf("iteration %d: %s Keep=%v with reasons %q", iter, d.Point.ID, d.Keep, d.Reasons)
			}
			if d.Point.Hold && !d.Keep {
				t.Fatalf("iteration %d: held point %s dropped", iter, d.Point.ID)
			}
			if rules.Empty() && !d.Keep {
				t.Fatalf("iteration %d: empty rules dropped %s", iter, d.Point.ID)
			}
			if d.Point.Complete && newestComplete < 0 {
				newestComplete = i
			}
		}
		if newestComplete >= 0 && !ds[newestComplete].Keep {
			t.Fatalf("iteration %d: newest complete point %s dropped", iter, ds[newestComplete].Point.ID)
		}
		if again := Apply(points, rules, paris); !reflect.DeepEqual(again, ds) {
			t.Fatalf("iteration %d: Apply not deterministic:\n%s", iter, diffLines(render(ds), render(again)))
		}
	}
}

func TestRulesValidate(t *testing.T) {
	tests := []struct {
		rules Rules
		want  []string // substrings of the error; nil means valid
	}{
		{Rules{}, nil},
		{Rules{Last: 1, Hourly: 2, Daily: 3, Weekly: 4, Monthly: 5, Yearly: 6, Within: time.Hour}, nil},
		{Rules{Last: -1}, []string{"last is -1"}},
		{Rules{Hourly: -1}, []string{"hourly"}},
		{Rules{Daily: -2}, []string{"daily is -2"}},
		{Rules{Weekly: -1}, []string{"weekly"}},
		{Rules{Monthly: -1}, []string{"monthly"}},
		{Rules{Yearly: -1}, []string{"yearly"}},
		{Rules{Within: -time.Hour}, []string{"within is -1h0m0s"}},
		{Rules{Daily: -1, Within: -time.Minute, Last: 3}, []string{"daily", "within"}},
	}
	for _, tt := range tests {
		err := tt.rules.Validate()
		if tt.want == nil {
			if err != nil {
				t.Errorf("Validate(%+v) = %v, want nil", tt.rules, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("Validate(%+v) = nil, want an error naming %q", tt.rules, tt.want)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Validate(%+v) = %q, want it to contain %q", tt.rules, err, w)
			}
		}
	}
}

func TestRulesEmpty(t *testing.T) {
	if !(Rules{}).Empty() {
		t.Error("Rules{}.Empty() = false")
	}
	for _, r := range []Rules{{Last: 1}, {Hourly: 1}, {Daily: 1}, {Weekly: 1}, {Monthly: 1}, {Yearly: 1}, {Within: time.Second}, {Last: -1}} {
		if r.Empty() {
			t.Errorf("%+v.Empty() = true", r)
		}
	}
}

// decisions returns keep kept and drop dropped decisions.
func decisions(keep, drop int) []Decision {
	var ds []Decision
	for i := range keep + drop {
		d := Decision{Point: Point{ID: fmt.Sprint(i)}}
		if i < keep {
			d.Keep, d.Reasons = true, []string{"test"}
		}
		ds = append(ds, d)
	}
	return ds
}

func TestSummary(t *testing.T) {
	keep, drop := Summary(decisions(3, 4))
	if keep != 3 || drop != 4 {
		t.Errorf("Summary = %d, %d; want 3, 4", keep, drop)
	}
	if keep, drop := Summary(nil); keep != 0 || drop != 0 {
		t.Errorf("Summary(nil) = %d, %d; want 0, 0", keep, drop)
	}
}

func TestCheckDropFraction(t *testing.T) {
	tests := []struct {
		keep, drop int
		wantErr    string
	}{
		{0, 0, ""},
		{10, 0, ""},
		{5, 5, ""}, // exactly half is allowed
		{1, 1, ""},
		{3, 7, "prune would drop 7 of 10 points (more than half); refusing"},
		{4, 5, "prune would drop 5 of 9 points (more than half); refusing"},
		{0, 1, "prune would drop 1 of 1 points (more than half); refusing"},
	}
	for _, tt := range tests {
		err := CheckDropFraction(decisions(tt.keep, tt.drop))
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("keep %d drop %d: CheckDropFraction = %v, want nil", tt.keep, tt.drop, err)
			}
			continue
		}
		var dfe *DropFractionError
		if !errors.As(err, &dfe) {
			t.Fatalf("keep %d drop %d: CheckDropFraction = %v, want a *DropFractionError", tt.keep, tt.drop, err)
		}
		if got := err.Error(); got != tt.wantErr {
			t.Errorf("keep %d drop %d: error %q, want %q", tt.keep, tt.drop, got, tt.wantErr)
		}
		if dfe.Drop != tt.drop || dfe.Total != tt.keep+tt.drop {
			t.Errorf("keep %d drop %d: error fields %+v", tt.keep, tt.drop, *dfe)
		}
	}
}

func TestCheckClockSkew(t *testing.T) {
	server := at("2026-11-24 12:00")
	tests := []struct {
		name    string
		storage time.Time
		wantErr string
	}{
		{"equal", server, ""},
		{"storage ahead within max", server.Add(59 * time.Minute), ""},
		{"exactly max", server.Add(-time.Hour), ""},
		{"storage ahead", server.Add(90 * time.Minute),
			"server clock 2026-11-24T12:00:00Z and storage clock 2026-11-24T13:30:00Z differ by 1h30m0s (more than 1h0m0s); refusing to prune"},
		{"storage behind", server.Add(-2 * time.Hour),
			"server clock 2026-11-24T12:00:00Z and storage clock 2026-11-24T10:00:00Z differ by 2h0m0s (more than 1h0m0s); refusing to prune"},
		{"unknown storage time", time.Time{}, "storage clock 0001-01-01T00:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckClockSkew(server, tt.storage, time.Hour)
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("CheckClockSkew = %v, want nil", err)
				}
				return
			}
			var cse *ClockSkewError
			if !errors.As(err, &cse) {
				t.Fatalf("CheckClockSkew = %v, want a *ClockSkewError", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q, want it to contain %q", err, tt.wantErr)
			}
			if got, want := cse.Skew(), server.Sub(tt.storage); got != want {
				t.Errorf("Skew() = %s, want %s", got, want)
			}
		})
	}
}
