package retention

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Rules is a retention policy. A zero count or duration leaves its rule
// unused; a Rules with every field zero keeps every point.
type Rules struct {
	Last    int // keep the Last newest complete points
	Hourly  int // keep the newest complete point of each of the Hourly newest hours
	Daily   int // ... of each of the Daily newest local days
	Weekly  int // ... of each of the Weekly newest ISO weeks
	Monthly int // ... of each of the Monthly newest months
	Yearly  int // ... of each of the Yearly newest years

	// Within keeps the complete points whose time is at or after the newest
	// complete point's time minus Within. It is measured from that point and
	// not from now, so an app that stopped backing up keeps its points.
	Within time.Duration
}

// Empty reports whether no rule is set. Empty rules keep every point.
func (r Rules) Empty() bool {
	return r == Rules{}
}

// Validate returns an error naming every field that is negative.
func (r Rules) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		n    int
	}{
		{"last", r.Last},
		{"hourly", r.Hourly},
		{"daily", r.Daily},
		{"weekly", r.Weekly},
		{"monthly", r.Monthly},
		{"yearly", r.Yearly},
	} {
		if f.n < 0 {
			errs = append(errs, fmt.Errorf("retention rule %s is %d, want 0 (unused) or more", f.name, f.n))
		}
	}
	if r.Within < 0 {
		errs = append(errs, fmt.Errorf("retention rule within is %s, want 0 (unused) or more", r.Within))
	}
	return errors.Join(errs...)
}

// Point is what retention needs to know about one point of an app.
type Point struct {
	ID       string
	Time     time.Time
	Complete bool // every component was captured; only complete points count toward rules
	Hold     bool // pinned by an operator; always kept
}

// Decision is the fate of one point. Reasons says, in words an operator
// reads in a CLI table, why a kept point is kept; it is nil for a dropped
// point.
type Decision struct {
	Point   Point
	Keep    bool
	Reasons []string
}

// Reasons that are not derived from a rule's bucket or count.
const (
	ReasonNewestComplete = "newest complete point"
	ReasonPartial        = "partial (not counted)"
	ReasonPartialOnly    = "partial (no complete point)"
	ReasonHold           = "hold"
	ReasonNoRules        = "no rules (keep all)"
	ReasonInvalidRules   = "invalid rules (keep all)"
)

// bucketRule is one of the calendar rules: keep the newest complete point of
// each of the count newest distinct buckets.
type bucketRule struct {
	name  string
	count int
	key   func(local time.Time) string
}

func bucketRules(r Rules) []bucketRule {
	return []bucketRule{
		{"hourly", r.Hourly, hourKey},
		{"daily", r.Daily, func(t time.Time) string { return t.Format(time.DateOnly) }},
		{"weekly", r.Weekly, func(t time.Time) string {
			y, w := t.ISOWeek()
			return fmt.Sprintf("%d-W%02d", y, w)
		}},
		{"monthly", r.Monthly, func(t time.Time) string { return t.Format("2006-01") }},
		{"yearly", r.Yearly, func(t time.Time) string { return t.Format("2006") }},
	}
}

// hourKey includes the UTC offset: on a daylight-saving fall-back the local
// hour 02:00 happens twice, and those are two hours of data, not one.
func hourKey(t time.Time) string {
	return fmt.Sprintf("%s %02d:00 %s", t.Format(time.DateOnly), t.Hour(), t.Format("-07:00"))
}

// Apply decides, for every point, whether a prune under r keeps it. Buckets
// are computed in loc (the policy's time zone; nil means UTC). The result has
// one Decision per point, sorted newest first, equal times by ID; among equal
// times the earlier ID counts as the newer point. Apply does not modify
// points.
//
// Apply never drops the newest complete point or a point on hold. Empty
// rules, and rules that fail Validate, keep every point.
func Apply(points []Point, r Rules, loc *time.Location) []Decision {
	if loc == nil {
		loc = time.UTC
	}
	ds := make([]Decision, len(points))
	for i, p := range points {
		ds[i].Point = p
	}
	slices.SortFunc(ds, func(a, b Decision) int { return comparePoints(a.Point, b.Point) })

	keep := func(i int, reason string) {
		ds[i].Keep = true
		ds[i].Reasons = append(ds[i].Reasons, reason)
	}

	// Indices into ds of the complete points, newest first. Partial points
	// never appear here, so they can never use up a rule's count.
	var complete []int
	for i := range ds {
		if ds[i].Point.Complete {
			complete = append(complete, i)
		}
	}

	for rank, i := range complete {
		if rank >= r.Last {
			break
		}
		keep(i, fmt.Sprintf("last %d", rank+1))
	}

	if r.Within > 0 && len(complete) > 0 {
		cutoff := ds[complete[0]].Point.Time.Add(-r.Within)
		reason := "within " + r.Within.String()
		for _, i := range complete {
			if ds[i].Point.Time.Before(cutoff) {
				break // sorted newest first: every later point is older still
			}
			keep(i, reason)
		}
	}

	for _, b := range bucketRules(r) {
		if b.count <= 0 {
			continue
		}
		// A set rather than "the previous bucket", so a bucket is counted
		// once even if local time runs backwards (DST) between points.
		seen := make(map[string]bool, b.count)
		for _, i := range complete {
			if len(seen) >= b.count {
				break
			}
			k := b.key(ds[i].Point.Time.In(loc))
			if seen[k] {
				continue
			}
			seen[k] = true
			keep(i, b.name+" "+k)
		}
	}

	if len(complete) > 0 {
		keep(complete[0], ReasonNewestComplete)
	}

	// Partial points newer than the oldest complete point the policy keeps
	// are the recent history of a failing app: keep them. Holds are not
	// policy, so an old held point does not stretch this window.
	oldestKept := -1
	for _, i := range complete {
		if ds[i].Keep {
			oldestKept = i
		}
	}
	for i := range ds {
		switch {
		case ds[i].Point.Complete:
		case len(complete) == 0:
			// Nothing complete exists: the partial points are all there is.
			keep(i, ReasonPartialOnly)
		case i < oldestKept:
			keep(i, ReasonPartial)
		}
	}

	for i := range ds {
		if ds[i].Point.Hold {
			keep(i, ReasonHold)
		}
	}

	if all := keepAllReason(r); all != "" {
		for i := range ds {
			keep(i, all)
		}
	}
	return ds
}

// keepAllReason returns the reason every point is kept under r, or "" if r
// is a usable policy. A policy with a negative count would otherwise keep
// almost nothing, so it keeps everything instead.
func keepAllReason(r Rules) string {
	switch {
	case r.Validate() != nil:
		return ReasonInvalidRules
	case r.Empty():
		return ReasonNoRules
	}
	return ""
}

// comparePoints orders newest first, then by ID, then by the flags so that
// the order is total and Apply does not depend on the input order.
func comparePoints(a, b Point) int {
	if c := b.Time.Compare(a.Time); c != 0 {
		return c
	}
	if c := strings.Compare(a.ID, b.ID); c != 0 {
		return c
	}
	if a.Complete != b.Complete {
		if a.Complete {
			return -1
		}
		return 1
	}
	if a.Hold != b.Hold {
		if a.Hold {
			return -1
		}
		return 1
	}
	return 0
}

// Summary counts the kept and dropped points of ds.
func Summary(ds []Decision) (keep, drop int) {
	for _, d := range ds {
		if d.Keep {
			keep++
		} else {
			drop++
		}
	}
	return keep, drop
}

// DropFractionError is returned by CheckDropFraction when a prune would drop
// more than half of an app's points.
type DropFractionError struct {
	Drop, Total int
}

func (e *DropFractionError) Error() string {
	return fmt.Sprintf("prune would drop %d of %d points (more than half); refusing", e.Drop, e.Total)
}

// CheckDropFraction returns a *DropFractionError if ds drops more than half
// of its points. A prune stops and alerts on it; only an explicit override by
// the caller lets it go on. Dropping exactly half is allowed.
func CheckDropFraction(ds []Decision) error {
	_, drop := Summary(ds)
	if 2*drop > len(ds) {
		return &DropFractionError{Drop: drop, Total: len(ds)}
	}
	return nil
}

// ClockSkewError is returned by CheckClockSkew when the server's clock and
// the storage's clock disagree by more than Max.
type ClockSkewError struct {
	Server, Storage time.Time
	Max             time.Duration
}

// Skew is Server minus Storage: positive when the server's clock is ahead.
func (e *ClockSkewError) Skew() time.Duration {
	return e.Server.Sub(e.Storage)
}

func (e *ClockSkewError) Error() string {
	return fmt.Sprintf("server clock %s and storage clock %s differ by %s (more than %s); refusing to prune",
		e.Server.UTC().Format(time.RFC3339), e.Storage.UTC().Format(time.RFC3339), e.Skew().Abs(), e.Max)
}

// CheckClockSkew returns a *ClockSkewError if server and storage are more
// than maxSkew apart, in either direction. Points are stamped by server
// clocks; when a clock disagrees with the storage's, one of them is wrong and
// a prune waits until it is fixed. A zero storage time (unknown) is far from
// any real clock and so fails.
func CheckClockSkew(server, storage time.Time, maxSkew time.Duration) error {
	if server.Sub(storage).Abs() > maxSkew {
		return &ClockSkewError{Server: server, Storage: storage, Max: maxSkew}
	}
	return nil
}
