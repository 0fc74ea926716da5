package bench

import (
	"math"
	"slices"
	"time"
)

// median of a sample; 0 for none. Medians, not means: a noisy neighbour on a shared machine
// shows up as one slow run, which a median ignores and a mean does not.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// percentile by nearest rank, p in (0, 100].
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// round keeps figures.json readable: three decimals are below any noise this machine has.
func round(x float64) float64 { return math.Round(x*1000) / 1000 }

// fixedPollLag is how late a waiter polling every interval from the operation's start notices
// an operation that takes t: the first poll at or after t.
func fixedPollLag(t, interval time.Duration) time.Duration {
	if interval <= 0 {
		return 0
	}
	polls := int64((t + interval - 1) / interval)
	return time.Duration(polls)*interval - t
}

// idealRollout is ceil(n/parallel) × tEngine: every batch of parallel engines takes one
// engine's time and nothing else costs anything.
func idealRollout(n, parallel int, tEngine time.Duration) time.Duration {
	batches := (n + parallel - 1) / parallel
	return time.Duration(batches) * tEngine
}

// stepBatches is the same count for a stepped rollout whose pool drains between steps: the
// movers of each step (cumulative percent of n, rounded up as upgrade.PlanSteps does) in
// batches of parallel. For 1,000 engines, steps 5/25/100 and 50 at once it is 1+4+15 = 20,
// equal to ceil(1000/50): the steps cost no extra batch.
func stepBatches(n, parallel int, steps []int) int {
	total, done := 0, 0
	for _, p := range steps {
		reach := (n*p + 99) / 100
		movers := reach - done
		if movers > 0 {
			total += (movers + parallel - 1) / parallel
		}
		done = max(done, reach)
	}
	return total
}
