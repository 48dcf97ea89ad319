package schedule

import "time"

// start is a nominal slot after the window moved it: the instant a run may
// begin, and the close of the window it lies in (zero without a window).
type start struct {
	at, close time.Time
}

// startAfter returns the first start strictly after t. A nominal slot outside
// the window moves to the window's next opening, so all the slots of one
// closed period collapse into a single start.
func (s *Schedule) startAfter(t time.Time) start {
	if s.window == nil {
		return start{at: s.nominalAfter(t)}
	}
	prevClose, sp, in := s.window.locate(t)
	if in {
		return s.effective(s.nominalAfter(t))
	}
	// t is in a closed period that began at prevClose; a slot anywhere in
	// [prevClose, sp.open) starts at sp.open, which is after t.
	n := s.nominalAfter(prevClose.Add(-time.Nanosecond))
	if n.IsZero() {
		return start{}
	}
	if n.Before(sp.open) {
		return start{at: sp.open, close: sp.close}
	}
	return s.effective(n)
}

// effective moves the nominal slot n into the window.
func (s *Schedule) effective(n time.Time) start {
	if n.IsZero() {
		return start{}
	}
	_, sp, in := s.window.locate(n)
	if in {
		return start{at: n, close: sp.close}
	}
	return start{at: sp.open, close: sp.close}
}

// nominalAfter returns the first slot of the cron or interval strictly after t.
func (s *Schedule) nominalAfter(t time.Time) time.Time {
	if s.cron == nil {
		sec := t.Unix() // the whole second at or before t
		k := sec / s.every
		if sec%s.every < 0 {
			k-- // floor for instants before 1970
		}
		return time.Unix((k+1)*s.every, 0).In(s.loc)
	}
	// The cron runs on wall-clock values (robfig in UTC); instant maps a wall
	// value back to real time, monotonically. instant(wallOf(t)) <= t, so the
	// answer is a wall value after wallOf(t): scan forward until it maps past t.
	// The loop turns more than once only in the hour after a fall-back.
	w := wallOf(t.In(s.loc))
	for range maxSteps {
		w = s.cron.Next(w)
		if w.IsZero() {
			return time.Time{}
		}
		if r := instant(w, s.loc); r.After(t) {
			return r
		}
	}
	return time.Time{}
}

// run is the start st delayed by key's jitter. The delay stays below the
// jitter, the next start (so runs never reorder or pile up) and the window's
// close (so a run never leaves the window).
func (s *Schedule) run(st start, next time.Time, key string) time.Time {
	limit := st.at.Add(s.jitter)
	if !next.IsZero() && next.Before(limit) {
		limit = next
	}
	return s.jitterIn(st.at, limit, st.close, key)
}

// jitterIn returns at plus hash(key, at) mod the whole seconds left before
// limit and close (close is ignored when zero).
func (s *Schedule) jitterIn(at, limit, close time.Time, key string) time.Time {
	if !close.IsZero() && close.Before(limit) {
		limit = close
	}
	secs := int64(limit.Sub(at) / time.Second)
	if secs <= 1 {
		return at
	}
	return at.Add(time.Duration(hash(key, at.Unix())%uint64(secs)) * time.Second)
}

// hash mixes key and the start's Unix second: FNV-1a over the key, then a
// 64-bit finalizer so starts one second apart give unrelated delays. It is
// part of the schedule's observable behaviour: changing it reshuffles every
// app's run time once.
func hash(key string, sec int64) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= 1099511628211
	}
	h ^= uint64(sec)
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// wallOf returns t's wall clock (date and time in t's location) as a UTC value.
func wallOf(t time.Time) time.Time {
	y, mo, d := t.Date()
	h, mi, sec := t.Clock()
	return time.Date(y, mo, d, h, mi, sec, t.Nanosecond(), time.UTC)
}

// instant maps a wall-clock value w (given in UTC) to the real instant it
// names in loc. Two DST rules keep the mapping monotonic:
//   - a wall time skipped by a spring-forward maps to the transition itself
//     (02:30 on the day Paris jumps from 02:00 to 03:00 is 03:00 CEST), so the
//     slot still runs that day;
//   - a wall time repeated by a fall-back maps to its first occurrence, so the
//     slot runs once, not twice.
func instant(w time.Time, loc *time.Location) time.Time {
	if loc == time.UTC {
		return w
	}
	y, mo, d := w.Date()
	h, mi, sec := w.Clock()
	t := time.Date(y, mo, d, h, mi, sec, w.Nanosecond(), loc)
	zs, ze := t.ZoneBounds()
	if got := wallOf(t); !got.Equal(w) {
		// In a gap: time.Date moved w to one side of the transition,
		// and the transition is the bound of t's zone period on the other.
		if got.Before(w) {
			return ze
		}
		return zs
	}
	if zs.IsZero() {
		return t
	}
	_, off := t.Zone()
	_, prevOff := zs.Add(-time.Nanosecond).Zone()
	if shift := time.Duration(prevOff-off) * time.Second; shift > 0 && t.Sub(zs) < shift {
		return t.Add(-shift) // the same wall time, before the fall-back
	}
	return t
}
