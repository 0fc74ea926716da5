package provider

import "testing"

// TestAccDocker_rehearsal reruns the rehearsal tests with every engine a container: the staging
// engine is a container of the target version's image on the migrated copy.
func TestAccDocker_rehearsal(t *testing.T) {
	t.Parallel()
	runOnDocker(t, map[string]func(*testing.T){
		"majorOnACopy":          TestAccRehearsal_majorOnACopy,
		"badPatchFailsTheApply": TestAccRehearsal_badPatchFailsTheApply,
	})
}
