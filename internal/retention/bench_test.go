package retention

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkApply prunes 10,000 points: one an hour for 14 months, one in ten
// partial, one in a hundred on hold, given in oldest-first order as a catalog
// query would return them.
func BenchmarkApply(b *testing.B) {
	paris := mustLoadLocation(b, "Europe/Paris")
	start := at("2025-10-01 00:00")
	points := make([]Point, 10_000)
	for i := range points {
		points[i] = Point{
			ID:       fmt.Sprintf("pt-%05d", i),
			Time:     start.Add(time.Duration(i) * time.Hour),
			Complete: i%10 != 0,
			Hold:     i%100 == 0,
		}
	}
	rules := Rules{Last: 10, Within: 48 * time.Hour, Hourly: 24, Daily: 14, Weekly: 8, Monthly: 12, Yearly: 5}
	b.ReportAllocs()
	for b.Loop() {
		ds := Apply(points, rules, paris)
		if len(ds) != len(points) {
			b.Fatalf("%d decisions for %d points", len(ds), len(points))
		}
	}
}
