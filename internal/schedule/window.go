package schedule

import (
	"fmt"
	"time"
)

// window is a daily opening on the wall clock of loc, in minutes after
// midnight: [start, end), wrapping midnight when end <= start.
type window struct {
	start, end int
	loc        *time.Location
}

// span is one day's opening of the window, as real instants: [open, close).
type span struct {
	open, close time.Time
}

// parseWindow parses "HH:MM-HH:MM".
func parseWindow(v string, loc *time.Location) (*window, error) {
	if len(v) != len("HH:MM-HH:MM") || v[5] != '-' {
		return nil, fmt.Errorf("invalid window %q: want HH:MM-HH:MM", v)
	}
	start, err := parseClock(v[:5])
	if err != nil {
		return nil, fmt.Errorf("invalid window %q: %v", v, err)
	}
	end, err := parseClock(v[6:])
	if err != nil {
		return nil, fmt.Errorf("invalid window %q: %v", v, err)
	}
	if start == end {
		return nil, fmt.Errorf("invalid window %q: start equals end", v)
	}
	return &window{start: start, end: end, loc: loc}, nil
}

// parseClock parses "HH:MM" into minutes after midnight.
func parseClock(v string) (int, error) {
	if len(v) != 5 || v[2] != ':' || !digits(v[:2]) || !digits(v[3:]) {
		return 0, fmt.Errorf("%q is not HH:MM", v)
	}
	h := int(v[0]-'0')*10 + int(v[1]-'0')
	m := int(v[3]-'0')*10 + int(v[4]-'0')
	if h > 23 {
		return 0, fmt.Errorf("hour %02d out of range 00-23", h)
	}
	if m > 59 {
		return 0, fmt.Errorf("minute %02d out of range 00-59", m)
	}
	return h*60 + m, nil
}

func digits(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	return true
}

func (w *window) String() string {
	return fmt.Sprintf("%02d:%02d-%02d:%02d", w.start/60, w.start%60, w.end/60, w.end%60)
}

// spanOn returns the opening that starts on the wall date y-m-d. Its bounds
// go through instant, so DST days follow the same rules as cron slots; an
// opening that falls entirely inside a spring-forward gap is empty.
func (w *window) spanOn(y int, m time.Month, d int) span {
	day := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	end := day.Add(time.Duration(w.end) * time.Minute)
	if w.end <= w.start {
		end = end.Add(24 * time.Hour) // closes the next day
	}
	return span{
		open:  instant(day.Add(time.Duration(w.start)*time.Minute), w.loc),
		close: instant(end, w.loc),
	}
}

// locate returns the opening containing t (in = true) or else the first one
// after t, and the close of the opening before that one.
func (w *window) locate(t time.Time) (prevClose time.Time, sp span, in bool) {
	y, m, d := t.In(w.loc).Date()
	// Openings start on consecutive wall dates and each ends before the next
	// begins, so the one containing t started on d-1 or d, the next one on d
	// or d+1, and the previous close belongs to d-2 at the earliest. The extra
	// days absorb openings emptied by a DST gap.
	for k := -2; k <= 3; k++ {
		c := w.spanOn(y, m, d+k)
		if !c.open.Before(c.close) {
			continue
		}
		if c.close.After(t) {
			if prevClose.IsZero() {
				prevClose = t.Add(-48 * time.Hour)
			}
			return prevClose, c, !c.open.After(t)
		}
		prevClose = c.close
	}
	// Unreachable: a window of at least a minute opens on most days.
	return prevClose, span{}, false
}
