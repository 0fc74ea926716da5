package upgrade

import (
	"strings"
	"testing"
)

// Parsing never panics, and Kind is antisymmetric: a move up one way is a downgrade the other.
func FuzzKind(f *testing.F) {
	for _, s := range [][2]string{{"2.3.0", "2.4.0"}, {"3.0.0", "2.4.1"}, {"1.0.0-rc.1", "1.0.0"}, {"", "x"}, {"2.3", "2.3.0"}, {"v2.3.1", "2.3.1+build"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ab, errA := Kind(a, b)
		ba, errB := Kind(b, a)
		if (errA == nil) != (errB == nil) {
			t.Fatalf("Kind(%q,%q) err %v but Kind(%q,%q) err %v", a, b, errA, b, a, errB)
		}
		if errA != nil {
			if !strings.Contains(errA.Error(), "not a valid version") {
				t.Fatalf("unclear error: %v", errA)
			}
			return
		}
		switch {
		case ab == KindNone && ba != KindNone, ab != KindNone && ab != KindDowngrade && ba != KindDowngrade, ab == KindDowngrade && ba == KindDowngrade:
			t.Fatalf("Kind(%q,%q)=%s but Kind(%q,%q)=%s", a, b, ab, b, a, ba)
		}
	})
}

func FuzzSatisfies(f *testing.F) {
	for _, s := range [][2]string{{"2.4.1", ">= 2.3, < 3.0"}, {"3.0.0", "~> 2.4"}, {"2.4.0", "!= 2.4.0"}, {"1.0.0", ""}, {"x", ">= 1"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, v, c string) {
		_, _ = Satisfies(v, c) // must not panic; errors are fine
	})
}

// Any schedule ValidateSteps accepts gives cohorts that only grow and end where they should.
func FuzzCohortSteps(f *testing.F) {
	f.Add([]byte{1, 5, 25, 50, 100}, uint16(37), "seed")
	f.Add([]byte{10, 50, 100}, uint16(1), "")
	f.Add([]byte{100}, uint16(1000), "x")
	f.Add([]byte{5, 5}, uint16(3), "s")
	f.Fuzz(func(t *testing.T, raw []byte, n uint16, seed string) {
		if len(raw) > 20 || n > 2000 {
			return
		}
		steps := make([]int64, len(raw))
		for i, b := range raw {
			steps[i] = int64(b)
		}
		if err := ValidateSteps(steps); err != nil {
			return
		}
		us := users(int(n))
		var moved []string
		for _, p := range steps {
			c := Cohort(seed, us, p, moved)
			if len(c) < len(moved) || len(c) != CohortSize(p, len(us)) {
				t.Fatalf("step %d%% of %d: cohort %d after %d moved", p, n, len(c), len(moved))
			}
			moved = c
		}
	})
}
