package schedule

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// MinEvery is the shortest interval a Spec may ask for.
const MinEvery = time.Minute

// maxSteps bounds every forward search, so a pathological spec (a minutely
// cron with a week of jitter) costs a bounded amount of work instead of a hang.
const maxSteps = 100_000

// Spec is a policy's schedule as the user writes it.
type Spec struct {
	// Cron is a standard 5-field expression ("0 2 * * *") or a descriptor
	// (@hourly, @daily, @midnight, @weekly, @monthly, @yearly), read on the
	// wall clock of TimeZone. Exclusive with Every.
	Cron string
	// Every is an interval of at least MinEvery, in whole seconds, anchored at
	// the Unix epoch and blind to TimeZone. Exclusive with Cron.
	Every time.Duration
	// TimeZone is an IANA name; empty means "UTC".
	TimeZone string
	// Jitter is the upper bound (exclusive) of the per-app delay; 0 disables it.
	Jitter time.Duration
	// Window is an optional "HH:MM-HH:MM" on the wall clock of TimeZone,
	// start included and end excluded. It may wrap midnight ("22:00-04:00").
	Window string
}

// Schedule is a parsed Spec. It is immutable and safe for concurrent use.
type Schedule struct {
	spec   Spec // as given, with TimeZone defaulted
	loc    *time.Location
	cron   *cron.SpecSchedule // nil for an interval
	every  int64              // interval in seconds; 0 for a cron
	jitter time.Duration
	window *window // nil when there is none
}

// Parse validates s and returns its Schedule. Errors are one line and quote
// the offending input.
func Parse(s Spec) (*Schedule, error) {
	sc := &Schedule{spec: s, jitter: s.Jitter}
	switch {
	case s.Cron != "" && s.Every != 0:
		return nil, errors.New("cron and every are exclusive")
	case s.Cron == "" && s.Every == 0:
		return nil, errors.New("cron or every is required")
	case s.Cron != "":
		c, err := parseCron(s.Cron)
		if err != nil {
			return nil, err
		}
		sc.cron = c
	default:
		if s.Every < MinEvery {
			return nil, fmt.Errorf("every must be at least 1m, got %s", s.Every)
		}
		if s.Every%time.Second != 0 {
			return nil, fmt.Errorf("every must be whole seconds, got %s", s.Every)
		}
		sc.every = int64(s.Every / time.Second)
	}

	if sc.spec.TimeZone == "" {
		sc.spec.TimeZone = "UTC"
	}
	// "Local" would make the schedule depend on the host running it.
	if sc.spec.TimeZone == "Local" {
		return nil, fmt.Errorf("unknown time zone %q: name an IANA zone such as \"Europe/Paris\"", s.TimeZone)
	}
	loc, err := time.LoadLocation(sc.spec.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q", s.TimeZone)
	}
	sc.loc = loc

	if s.Jitter < 0 {
		return nil, fmt.Errorf("jitter must not be negative, got %s", s.Jitter)
	}
	if s.Every != 0 && s.Jitter >= s.Every {
		return nil, fmt.Errorf("jitter %s must be shorter than every %s", s.Jitter, s.Every)
	}
	if s.Window != "" {
		w, err := parseWindow(s.Window, loc)
		if err != nil {
			return nil, err
		}
		sc.window = w
	}
	return sc, nil
}

// parseCron accepts what cron.ParseStandard accepts, except the forms that
// would bypass Spec: "@every" (use Every) and a "TZ=" prefix (use TimeZone).
// The result is evaluated in UTC on wall-clock values (see wall.go).
func parseCron(expr string) (*cron.SpecSchedule, error) {
	e := strings.TrimSpace(expr)
	switch {
	case strings.HasPrefix(e, "@every"):
		return nil, fmt.Errorf("invalid cron expression %q: use every for intervals", expr)
	case strings.HasPrefix(e, "TZ=") || strings.HasPrefix(e, "CRON_TZ="):
		return nil, fmt.Errorf("invalid cron expression %q: set the time zone in time_zone", expr)
	}
	parsed, err := cron.ParseStandard(e)
	if err != nil {
		return nil, fmt.Errorf("invalid cron expression %q: %s", expr, oneLine(err.Error()))
	}
	c, ok := parsed.(*cron.SpecSchedule)
	if !ok {
		return nil, fmt.Errorf("invalid cron expression %q: unsupported form", expr)
	}
	c.Location = time.UTC
	// robfig gives up after five years; a date that never exists ("0 0 30 2 *")
	// would otherwise look like a schedule that silently never runs.
	if c.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return nil, fmt.Errorf("invalid cron expression %q: never fires", expr)
	}
	return c, nil
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// Next returns the run for key strictly after after, in the schedule's time
// zone, or the zero time if there is none (only for a cron that stops firing
// within robfig's five-year horizon, which Parse rules out for realistic dates).
//
// Runs are the starts (nominal slots moved into the window) delayed by the
// key's jitter; see doc.go. Feeding a run back in (Next(Next(t))) never
// returns the same run twice, and the sequence is strictly increasing.
func (s *Schedule) Next(after time.Time, key string) time.Time {
	if s.jitter == 0 {
		st := s.startAfter(after)
		return st.at
	}
	// A run lies in [start, start+jitter), so only starts after after-jitter
	// can produce a run after after. Runs never overtake the next start, so
	// the first one found is the earliest.
	st := s.startAfter(after.Add(-s.jitter))
	for range maxSteps {
		if st.at.IsZero() {
			return time.Time{}
		}
		nx := s.startAfter(st.at)
		if r := s.run(st, nx.at, key); r.After(after) {
			return r
		}
		st = nx
	}
	return time.Time{}
}

// Due reports whether key should run now given its last run, and when it
// should next be asked.
//
//   - lastRun zero (never ran): not due; next = Next(now). A new app waits for
//     its first slot instead of every new app running at once.
//   - Otherwise due if a run came due in (lastRun, now]: once, however many
//     slots were missed. next = Next(now), the run after the catch-up.
//   - With a window, a missed run is not caught up outside it: due is false
//     and next is the window's next opening plus the key's jitter, when Due
//     reports true.
//   - A lastRun after now (clock moved back) is not due, and next is computed
//     from lastRun so the app does not run twice for one slot.
func (s *Schedule) Due(lastRun, now time.Time, key string) (due bool, next time.Time) {
	from := now
	if lastRun.After(now) {
		from = lastRun
	}
	next = s.Next(from, key)
	if lastRun.IsZero() || lastRun.After(now) {
		return false, next
	}
	missed := s.Next(lastRun, key)
	if missed.IsZero() || missed.After(now) {
		return false, next
	}
	if s.window != nil {
		_, sp, in := s.window.locate(now)
		if !in {
			if c := s.jitterIn(sp.open, sp.open.Add(s.jitter), sp.close, key); next.IsZero() || c.Before(next) {
				next = c
			}
			return false, next
		}
	}
	return true, next
}

// String is the schedule in human form, for logs and the CLI:
// "cron 0 2 * * * (Europe/Paris), jitter 10m, window 01:00-05:00".
func (s *Schedule) String() string {
	var b strings.Builder
	if s.cron != nil {
		fmt.Fprintf(&b, "cron %s", strings.TrimSpace(s.spec.Cron))
	} else {
		fmt.Fprintf(&b, "every %s", shortDuration(s.spec.Every))
	}
	fmt.Fprintf(&b, " (%s)", s.spec.TimeZone)
	if s.jitter > 0 {
		fmt.Fprintf(&b, ", jitter %s", shortDuration(s.jitter))
	}
	if s.window != nil {
		fmt.Fprintf(&b, ", window %s", s.window)
	}
	return b.String()
}

// Spec returns the spec the schedule was parsed from, TimeZone defaulted.
func (s *Schedule) Spec() Spec { return s.spec }

// shortDuration drops the zero tails time.Duration.String prints: "10m", "1h30m".
func shortDuration(d time.Duration) string {
	v := d.String()
	if strings.HasSuffix(v, "m0s") {
		v = v[:len(v)-2]
	}
	if strings.HasSuffix(v, "h0m") {
		v = v[:len(v)-2]
	}
	return v
}
