package schedule

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkTick10kApps100Policies is one scheduler tick of a large server:
// 100 policies mixing crons, intervals, zones, jitter and windows, 10,000
// apps spread over them, and Next computed for every app. Each iteration
// moves the tick one minute forward.
func BenchmarkTick10kApps100Policies(b *testing.B) {
	zones := []string{"UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo", "Australia/Sydney"}
	policies := make([]*Schedule, 100)
	for i := range policies {
		spec := Spec{TimeZone: zones[i%len(zones)]}
		switch i % 4 {
		case 0: // daily, staging-style
			spec.Cron = fmt.Sprintf("%d %d * * *", i%60, i%24)
			spec.Jitter = 15 * time.Minute
		case 1: // weekly in a night window, production-style
			spec.Cron = fmt.Sprintf("0 %d * * %d", i%6, i%7)
			spec.Jitter = 30 * time.Minute
			spec.Window = "01:00-05:00"
		case 2:
			spec.Every = time.Duration(i%12+1) * time.Hour
			spec.Jitter = 5 * time.Minute
		case 3: // frequent, in a wrapping window
			spec.Cron = "*/15 * * * *"
			spec.Jitter = 2 * time.Minute
			spec.Window = "22:00-04:00"
		}
		policies[i] = mustParse(b, spec)
	}
	type app struct {
		key    string
		policy *Schedule
	}
	apps := make([]app, 10_000)
	for i := range apps {
		apps[i] = app{key: fmt.Sprintf("app-%05d", i), policy: policies[i%len(policies)]}
	}
	now := time.Date(2025, 3, 29, 18, 0, 0, 0, time.UTC) // a DST weekend
	b.ReportAllocs()
	for b.Loop() {
		for _, a := range apps {
			if next := a.policy.Next(now, a.key); !next.After(now) {
				b.Fatalf("%s: Next(%v) = %v", a.key, now, next)
			}
		}
		now = now.Add(time.Minute)
	}
}
