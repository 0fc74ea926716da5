package upgrade

import (
	"fmt"
	"strings"
	"time"
)

// Canary phases, as engine_canary records them.
const (
	PhaseProgressing = "progressing"
	PhaseHolding     = "holding"
	PhasePromoted    = "promoted"
	PhaseAborted     = "aborted"
)

// CanaryPhases lists every phase.
var CanaryPhases = []string{PhaseProgressing, PhaseHolding, PhasePromoted, PhaseAborted}

// Canary modes.
const (
	ModeAuto     = "auto"
	ModeStepwise = "stepwise"
)

// CanaryModes lists every mode.
var CanaryModes = []string{ModeStepwise, ModeAuto}

// CurrentPercent is the highest step whose cohort is fully moved, given how many of the n users
// in scope run the canary version; 0 when not even the first step is. It depends only on counts
// because Cohort always keeps every moved user: a step of p% is complete once CohortSize(p, n)
// users have moved.
func CurrentPercent(steps []int64, n, moved int) int64 {
	var cur int64
	for _, s := range steps {
		if CohortSize(s, n) <= moved && n > 0 {
			cur = s
		}
	}
	return cur
}

// Stop is where the rollout ends for now: hold_at when set, else the last step.
func Stop(steps []int64, holdAt int64) int64 {
	if holdAt > 0 {
		return holdAt
	}
	if len(steps) == 0 {
		return 0
	}
	return steps[len(steps)-1]
}

// Remaining lists the steps after current up to the stop (hold_at or the last step), in order.
// An empty result means there is nothing left to do.
func Remaining(steps []int64, holdAt, current int64) []int64 {
	stop := Stop(steps, holdAt)
	var out []int64
	for _, s := range steps {
		if s > current && s <= stop {
			out = append(out, s)
		}
	}
	return out
}

// Targets is what one apply walks: every remaining step in auto mode, at most one in stepwise.
func Targets(mode string, steps []int64, holdAt, current int64) []int64 {
	rest := Remaining(steps, holdAt, current)
	if mode == ModeStepwise && len(rest) > 1 {
		return rest[:1]
	}
	return rest
}

// PhaseAt is the phase of a rollout standing at current: promoted at the last step, holding at
// hold_at, progressing otherwise.
func PhaseAt(steps []int64, holdAt, current int64) string {
	switch {
	case len(steps) > 0 && current >= steps[len(steps)-1]:
		return PhasePromoted
	case holdAt > 0 && current >= holdAt:
		return PhaseHolding
	}
	return PhaseProgressing
}

// ValidateHoldAt checks that hold_at (0 = unset) is one of the steps and not the last one, which
// would be "promoted" anyway and make the hold meaningless.
func ValidateHoldAt(steps []int64, holdAt int64) error {
	if holdAt == 0 {
		return nil
	}
	for i, s := range steps {
		if s == holdAt {
			if i == len(steps)-1 {
				return fmt.Errorf("hold_at %d is the last step: the rollout is promoted there anyway. Hold at an earlier step (%s) or remove hold_at", holdAt, joinSteps(steps[:i]))
			}
			return nil
		}
	}
	return fmt.Errorf("hold_at %d is not one of the steps (%s): set it to one of them, or remove it", holdAt, joinSteps(steps))
}

func joinSteps(steps []int64) string {
	parts := make([]string, len(steps))
	for i, s := range steps {
		parts[i] = fmt.Sprintf("%d", s)
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// StepMove is one step of a rollout: the percentage it reaches and the users it moves.
type StepMove struct {
	Percent int64
	// Cohort is every user the step covers (already moved ones included), in rank order.
	Cohort []string
	// Movers are the users the step moves, in rank order.
	Movers []string
}

// PlanSteps computes the moves of the given target percentages, in order, starting from moved.
func PlanSteps(seed string, users []string, targets []int64, moved []string) []StepMove {
	cur := append([]string(nil), moved...)
	out := make([]StepMove, 0, len(targets))
	for _, p := range targets {
		c := Cohort(seed, users, p, cur)
		in := make(map[string]bool, len(cur))
		for _, u := range cur {
			in[u] = true
		}
		var movers []string
		for _, u := range c {
			if !in[u] {
				movers = append(movers, u)
			}
		}
		out = append(out, StepMove{Percent: p, Cohort: c, Movers: movers})
		cur = c
	}
	return out
}

// Batches is how many rounds of at most parallel engines it takes to move n engines.
func Batches(n, parallel int) int {
	if n <= 0 {
		return 0
	}
	if parallel < 1 {
		parallel = 1
	}
	return (n + parallel - 1) / parallel
}

// NominalEngineTime is the planning estimate of one engine's move (snapshot, drain, stop,
// migrate, boot, health) used for the plan's expected duration. Real engines vary; the estimate
// only informs reviewers and is never a hard limit.
const NominalEngineTime = 15 * time.Second

// Schedule estimates a walk through moves: the certain part (bake time, which the provider waits
// out in full after every step) and the expected total with NominalEngineTime per batch.
func Schedule(moves []StepMove, parallel int, bake time.Duration) (certain, expected time.Duration) {
	for _, m := range moves {
		certain += bake
		expected += bake + time.Duration(Batches(len(m.Movers), parallel))*NominalEngineTime
	}
	return certain, expected
}

func firstN(s []string, n int) []string {
	if len(s) <= n {
		return s
	}
	return append(append([]string(nil), s[:n]...), fmt.Sprintf("and %d more", len(s)-n))
}

// Sample picks at most n users spread evenly over a rank-ordered list, so analysis of a large
// cohort costs a bounded number of requests while still covering early and late movers.
func Sample(users []string, n int) []string {
	if n <= 0 || len(users) <= n {
		return users
	}
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, users[i*len(users)/n])
	}
	return out
}

// DescribeStep renders a step for humans: "move 4 users to 25%: user-0003, user-0007, …;
// snapshot first for 4", or "" for nothing.
func DescribeStep(m StepMove, snapshots int, maxNames int) string {
	if len(m.Movers) == 0 {
		return fmt.Sprintf("reach %d%% (no engine to move)", m.Percent)
	}
	noun := "users"
	if len(m.Movers) == 1 {
		noun = "user"
	}
	s := fmt.Sprintf("move %d %s to %d%%: %s", len(m.Movers), noun, m.Percent, strings.Join(firstN(m.Movers, maxNames), ", "))
	if snapshots > 0 {
		s += fmt.Sprintf("; snapshot first for %d", snapshots)
	}
	return s
}
