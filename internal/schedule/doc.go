// Package schedule computes when a policy's jobs run: the next run of an app
// (Next) and whether an app that may have missed runs is due now (Due).
//
// It is made of pure functions: no clock (now is an argument), no I/O, no
// logging, no randomness. It imports the standard library and
// github.com/robfig/cron/v3 (to parse cron expressions) and nothing of the
// project; the jobs runner owns the loop that calls it and records runs.
//
// A Spec is a cron expression or an interval, a time zone, a jitter and an
// optional daily window, so "daily for staging, weekly for production" reads
// Spec{Cron: "@daily"} and Spec{Cron: "@weekly", Window: "01:00-05:00"}.
//
// # Algorithm
//
//	nominal slots: cron   -> robfig's next match on the wall clock of the zone,
//	                         mapped to a real instant (see DST below)
//	               every  -> multiples of the interval since the Unix epoch
//	                         (the zone does not matter; 24h runs at 00:00 UTC)
//	starts:        slot if inside the window, else the window's next opening;
//	               the slots of one closed period collapse into one start
//	run(start):    start + hash(key, start) mod min(jitter,
//	                   next start - start, window close - start), in seconds
//	Next(after, key):
//	    st := first start after after-jitter
//	    while run(st) <= after: st = following start
//	    return run(st)
//	Due(lastRun, now, key):
//	    lastRun zero                 -> false, Next(now)
//	    Next(lastRun) > now          -> false, Next(now)
//	    window closed at now         -> false, min(Next(now), next opening + jitter)
//	    otherwise                    -> true,  Next(now)
//
// Jitter is deterministic per (key, start): a restart computes the same run
// times, two apps sharing a policy spread out, and the cap by the next start
// keeps runs in order, so a policy never runs an app more often than its
// schedule. Due answers true once however many slots were missed: the caller
// runs the job and stores now as lastRun, which moves past every missed slot.
//
// # DST
//
// Cron fields are wall-clock fields. A wall time skipped by a spring-forward
// runs at the transition instant ("30 2 * * *" in Europe/Paris runs at
// 03:00 CEST on the last Sunday of March, once). A wall time repeated by a
// fall-back runs at its first occurrence only, so a daily job runs once and an
// hourly job runs 24 times on a 25-hour day. Window bounds follow the same
// rules; an opening that lies entirely in a gap does not open that day.
// Intervals ignore DST. robfig's own time-zone support does neither (it
// skips the spring-forward day and runs twice on the fall-back day), which is
// why cron expressions are evaluated here in UTC on wall-clock values.
//
// # Tests
//
// Table tests cover Parse errors, Next for cron, intervals, time zones,
// windows (also wrapping midnight), jitter bounds and determinism, Due after
// a week of downtime, and DST days in Europe/Paris and America/New_York.
// BenchmarkTick10kApps100Policies computes one tick of a 10,000-app server.
package schedule
