package upgrade

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sort"
)

// DefaultSteps is the canary's default schedule of percentages.
var DefaultSteps = []int64{1, 5, 25, 50, 100}

// ValidateSteps checks a canary schedule: at least one step, each in 1..100, strictly increasing.
func ValidateSteps(steps []int64) error {
	if len(steps) == 0 {
		return fmt.Errorf("steps must hold at least one percentage, for example [1, 5, 25, 50, 100]")
	}
	for i, s := range steps {
		if s < 1 || s > 100 {
			return fmt.Errorf("step %d is %d%%: every step must be between 1 and 100", i+1, s)
		}
		if i > 0 && s <= steps[i-1] {
			return fmt.Errorf("step %d (%d%%) is not greater than step %d (%d%%): steps must strictly increase", i+1, s, i, steps[i-1])
		}
	}
	return nil
}

// CohortSize is how many of n engines a step of pct percent covers: ceil(pct% × n), at least one
// when n > 0 and pct > 0.
func CohortSize(pct int64, n int) int {
	if n <= 0 || pct <= 0 {
		return 0
	}
	size := (int(pct)*n + 99) / 100
	if size > n {
		size = n
	}
	return size
}

// Rank orders users by a hash of (seed, user id): the same seed always gives the same order, and
// a user's place relative to another never depends on who else is in the list.
func Rank(seed string, users []string) []string {
	type ranked struct {
		user string
		key  uint64
	}
	rs := make([]ranked, len(users))
	for i, u := range users {
		sum := sha256.Sum256([]byte(seed + "\x00" + u))
		rs[i] = ranked{u, binary.BigEndian.Uint64(sum[:8])}
	}
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].key != rs[j].key {
			return rs[i].key < rs[j].key
		}
		return rs[i].user < rs[j].user
	})
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.user
	}
	return out
}

// Cohort returns the users a step of pct percent covers: every already-moved user still in scope
// (moving never reverses by rank), then the highest-ranked others until the step's size is met.
// The result is in rank order.
func Cohort(seed string, users []string, pct int64, moved []string) []string {
	size := CohortSize(pct, len(users))
	isMoved := make(map[string]bool, len(moved))
	for _, u := range moved {
		isMoved[u] = true
	}
	ranked := Rank(seed, users)
	in := make(map[string]bool, size)
	count := 0
	for _, u := range ranked {
		if isMoved[u] {
			in[u] = true
			count++
		}
	}
	for _, u := range ranked {
		if count >= size {
			break
		}
		if !in[u] {
			in[u] = true
			count++
		}
	}
	out := make([]string, 0, count)
	for _, u := range ranked {
		if in[u] {
			out = append(out, u)
		}
	}
	return out
}

// Scope is what a canary's percentages are taken over: the configured users, then every user the
// canary itself moved that still runs its version, configured or not. A filter on the old version
// (data "engine_instances" { version = "2.3.1" }) drops each engine from the configured list as
// soon as it moves; keeping the canary's own movers in scope means that never shrinks the rollout
// or re-takes a step's share over the users left. The result keeps configured's order, then the
// movers not configured in sorted order, each user once.
func Scope(configured, movedByCanary []string) []string {
	seen := make(map[string]bool, len(configured)+len(movedByCanary))
	out := make([]string, 0, len(configured)+len(movedByCanary))
	for _, u := range configured {
		if !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	var extra []string
	for _, u := range movedByCanary {
		if !seen[u] {
			seen[u] = true
			extra = append(extra, u)
		}
	}
	sort.Strings(extra)
	return append(out, extra...)
}
