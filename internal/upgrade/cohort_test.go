package upgrade

import (
	"fmt"
	"math/rand"
	"testing"
)

func users(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("user-%04d", i+1)
	}
	return out
}

func TestValidateSteps(t *testing.T) {
	if err := ValidateSteps(DefaultSteps); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]int64{{}, {0, 10}, {5, 5}, {10, 5}, {50, 101}} {
		if err := ValidateSteps(bad); err == nil {
			t.Errorf("steps %v accepted", bad)
		}
	}
}

func TestCohortSize(t *testing.T) {
	for _, c := range []struct {
		pct  int64
		n    int
		want int
	}{{1, 10, 1}, {10, 10, 1}, {50, 10, 5}, {100, 10, 10}, {5, 1000, 50}, {1, 1, 1}, {33, 7, 3}, {0, 10, 0}, {10, 0, 0}} {
		if got := CohortSize(c.pct, c.n); got != c.want {
			t.Errorf("CohortSize(%d, %d) = %d, want %d", c.pct, c.n, got, c.want)
		}
	}
}

// Property: with the same seed, cohorts are deterministic, grow monotonically with the
// percentage, never drop a moved user, and adding users never removes anyone already moved.
func TestCohortProperties(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for trial := 0; trial < 200; trial++ {
		n := 1 + rng.Intn(300)
		us := users(n)
		seed := fmt.Sprintf("seed-%d", rng.Int())
		steps := []int64{1, 5, 25, 50, 100}
		var moved []string
		for _, p := range steps {
			c := Cohort(seed, us, p, moved)
			if len(c) != CohortSize(p, n) {
				t.Fatalf("trial %d: step %d%% of %d gave %d users, want %d", trial, p, n, len(c), CohortSize(p, n))
			}
			in := map[string]bool{}
			for _, u := range c {
				in[u] = true
			}
			for _, u := range moved {
				if !in[u] {
					t.Fatalf("trial %d: raising to %d%% dropped moved user %s", trial, p, u)
				}
			}
			again := Cohort(seed, us, p, moved)
			if fmt.Sprint(again) != fmt.Sprint(c) {
				t.Fatalf("trial %d: cohort not deterministic", trial)
			}
			moved = c
		}
		if len(moved) != n {
			t.Fatalf("trial %d: 100%% moved %d of %d", trial, len(moved), n)
		}
		// Adding users after a partial rollout keeps everyone already moved.
		partial := Cohort(seed, us, 25, nil)
		grown := append(append([]string{}, us...), users(n + 50)[n:]...)
		after := Cohort(seed, grown, 25, partial)
		in := map[string]bool{}
		for _, u := range after {
			in[u] = true
		}
		for _, u := range partial {
			if !in[u] {
				t.Fatalf("trial %d: adding users reshuffled moved user %s", trial, u)
			}
		}
	}
}

func TestRankStableUnderListOrder(t *testing.T) {
	us := users(50)
	a := Rank("s", us)
	rev := append([]string{}, us...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	if fmt.Sprint(a) != fmt.Sprint(Rank("s", rev)) {
		t.Fatal("rank depends on input order")
	}
	if fmt.Sprint(a) == fmt.Sprint(Rank("other", us)) {
		t.Fatal("seed has no effect on rank")
	}
}
