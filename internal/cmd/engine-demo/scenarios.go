package main

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/septemberai/terraform-provider-engine/internal/api"
	"github.com/septemberai/terraform-provider-engine/internal/client"
)

// scenarios are the examples with a walk-through of their own, keyed by directory name. Each
// checks the outcome its example is for, so the demo exits 0 exactly when that outcome happened,
// also when the outcome is a refusal or an abort.
var scenarios = map[string]func(*demo, context.Context) error{
	"quickstart":    (*demo).walkThrough,
	"fleet-canary":  (*demo).fleetCanary,
	"major-upgrade": (*demo).majorUpgrade,
}

// fleetCanary applies examples/fleet-canary. With its default, the bad patch 2.4.1, the intended
// outcome is the abort: the apply fails with "Canary Aborted" and every engine runs the seeded
// version again. A good version (TF_VAR_canary_version=2.4.0) must be promoted instead.
func (d *demo) fleetCanary(ctx context.Context) error {
	d.step("terraform apply %s: the canary moves its first step, bakes, and compares the moved engines with the rest", d.o.Example)
	applyErr := d.tf(ctx, "apply", "-input=false", "-auto-approve")
	if applyErr != nil && ctx.Err() != nil {
		return applyErr
	}
	aborted := strings.Contains(d.errs.String(), "Canary Aborted")
	versions, err := d.fleetVersions(ctx)
	if err != nil {
		return err
	}
	d.step("The fleet now: %s", versions)
	switch {
	case applyErr == nil:
		d.step("Done: the canary walked every step (a good version is promoted; with the default 2.4.1 the analysis aborts instead)")
		return nil
	case !aborted:
		return fmt.Errorf("the canary's apply failed without the intended \"Canary Aborted\": %w", applyErr)
	case versions != fmt.Sprintf("%d on %s", d.o.Engines, d.o.Version):
		return fmt.Errorf("the canary aborted but the fleet is not back on %s: %s", d.o.Version, versions)
	}
	d.step("Done: the intended abort. The analysis caught the bad release, terraform apply exited 1 with \"Canary Aborted\", "+
		"and every engine runs %s again", d.o.Version)
	return nil
}

// majorUpgrade applies examples/major-upgrade twice: first as written, which its preconditions
// refuse until someone names the migration guide and approves the destructive migration; then
// with both, which moves the engine to 3.0.0. A destroy brings it back to the seeded version.
func (d *demo) majorUpgrade(ctx context.Context) error {
	user := d.o.User
	d.step("terraform apply %s: refused until the migration guide is acknowledged (the intended first outcome)", d.o.Example)
	err := d.tf(ctx, "apply", "-input=false", "-auto-approve")
	if ctx.Err() != nil {
		return err
	}
	if err == nil {
		return fmt.Errorf("the major upgrade was applied before the migration guide was acknowledged")
	}
	if !strings.Contains(d.errs.String(), "set acknowledged_migration_guide") {
		return fmt.Errorf("the major upgrade failed, but not on the migration guide precondition: %w", err)
	}
	path, err := d.client.UpgradePath(ctx, d.o.Version, "3.0.0")
	if err != nil {
		return err
	}
	if len(path.MigrationGuideURLs) == 0 {
		return fmt.Errorf("the catalog names no migration guide for %s → 3.0.0", d.o.Version)
	}
	guide := path.MigrationGuideURLs[0]
	vars := []string{"TF_VAR_acknowledged_migration_guide=" + guide, fmt.Sprintf("TF_VAR_approved_destructive_migrations=[%q]", user)}
	d.step("terraform apply with acknowledged_migration_guide = %q and %s in approved_destructive_migrations", guide, user)
	if err := d.tfEnv(ctx, vars, "apply", "-input=false", "-auto-approve"); err != nil {
		return err
	}
	if err := d.expectVersion(ctx, user, "3.0.0"); err != nil {
		return err
	}
	d.step("terraform destroy: restore the pre-upgrade snapshot, back to %s", d.o.Version)
	if err := d.tfEnv(ctx, vars, "destroy", "-input=false", "-auto-approve"); err != nil {
		return err
	}
	if err := d.expectVersion(ctx, user, d.o.Version); err != nil {
		return err
	}
	d.step("Done: the refusal, then %s on 3.0.0 once the guide was acknowledged, then back on %s", user, d.o.Version)
	return nil
}

func (d *demo) expectVersion(ctx context.Context, user, version string) error {
	if err := d.showEngine(ctx, user); err != nil {
		return err
	}
	e, err := d.client.GetEngine(ctx, user)
	if err != nil {
		return err
	}
	if e.EngineVersion != version || e.Status != api.StatusRunning {
		return fmt.Errorf("%s's engine runs %s (%s), want %s running", user, e.EngineVersion, e.Status, version)
	}
	return nil
}

// fleetVersions says how many engines run each version, e.g. "19 on 2.3.1, 1 on 2.4.1".
func (d *demo) fleetVersions(ctx context.Context) (string, error) {
	engines, err := d.client.AllEngines(ctx, client.ListEnginesOptions{})
	if err != nil {
		return "", err
	}
	count := map[string]int{}
	var versions []string
	for _, e := range engines {
		if count[e.EngineVersion] == 0 {
			versions = append(versions, e.EngineVersion)
		}
		count[e.EngineVersion]++
	}
	sort.Strings(versions)
	parts := make([]string, len(versions))
	for i, v := range versions {
		parts[i] = fmt.Sprintf("%d on %s", count[v], v)
	}
	return strings.Join(parts, ", "), nil
}
