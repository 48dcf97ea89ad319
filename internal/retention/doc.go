// Package retention decides which points of one app a prune keeps and which it
// drops, and owns the guards a prune must pass before deleting anything
// (CheckDropFraction, CheckClockSkew).
//
// It is made of pure functions: no clock, no I/O, no logging. Apply takes the
// points and the policy's Rules and time zone and returns one Decision per
// point with the human-readable reasons it is kept. Deleting is the caller's
// job. The package imports the standard library only and nothing of the
// project, so the rules that protect an app's data can be read and tested on
// their own.
//
// # Safety promises
//
// These come from DESIGN.md ("Retention that cannot eat a failing app"):
//
//   - Only complete points count toward the keep rules. A failing app that
//     writes partial points every hour never pushes a complete point out.
//   - Within is measured back from the newest complete point, never from now:
//     there is no now parameter. An app that stopped backing up three weeks
//     ago keeps its points.
//   - The newest complete point is always kept, whatever the rules.
//   - Points on hold are always kept.
//   - Empty rules keep every point, and so do invalid rules (a negative
//     count): a mistyped policy must not turn into "keep almost nothing".
//   - Buckets are computed in the policy's time zone.
//   - A prune dropping more than half of the points, or running while the
//     server and storage clocks disagree, is refused by the Check functions.
//
// # Algorithm
//
//	sort points newest first; equal times by ID (the earlier ID counts as newer)
//	if rules are empty or invalid: every point gets a keep-all reason
//	C := complete points, in that order
//	last N:   C[0..N-1] kept as "last 1" .. "last N"
//	within D: every c in C with c.Time >= C[0].Time-D kept as "within D"
//	for each bucket rule (hourly, daily, weekly, monthly, yearly) with count N:
//	    seen := {}
//	    for c in C while |seen| < N:
//	        b := bucket(c.Time in loc)   // e.g. "2026-11-24", "2026-W47"
//	        if b not in seen: seen += b; keep c as "<rule> <b>"
//	C[0] kept as "newest complete point"
//	o := the oldest complete point kept so far (holds do not move o)
//	every partial point newer than o kept as "partial (not counted)";
//	    if there is no complete point, every partial point is kept
//	every point on hold kept as "hold"
//	everything else is dropped
//
// Hourly buckets carry the UTC offset, so the two 02:00 hours of a
// daylight-saving fall-back are two buckets. Daily buckets follow the local
// calendar day, which lasts 23 or 25 hours on DST days. Weekly buckets are
// ISO 8601 weeks ("2026-W53" may contain 1 January 2027).
//
// # Tests
//
// Table tests in retention_test.go cover each rule, their combination, the
// failing-app scenario, unsorted input, ties, time zones and DST days;
// BenchmarkApply runs on 10,000 points.
package retention
