package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// devOverrides is the warning as terraform prints it, without colour (plain) or with (boxed).
func devOverrides(boxed bool) string {
	lines := []string{
		"", "Warning: " + devOverridesWarning, "",
		"The following provider development overrides are set in the CLI", "configuration:",
		" - septemberai/engine in /tmp/engine-demo-1/plugins", "",
		"The behavior may therefore not match any released version of the provider and",
		"applying changes may cause the state to become incompatible with published", "releases.",
	}
	if !boxed {
		return strings.Join(lines, "\n") + "\n"
	}
	out := "\x1b[33m╷\x1b[0m\x1b[0m\n"
	for _, l := range lines[1:] {
		out += "\x1b[33m│\x1b[0m \x1b[0m" + l + "\n"
	}
	return out + "\x1b[33m╵\x1b[0m\x1b[0m\n"
}

const otherWarning = "\nWarning: Forward-Only Brain Migration\n\n  with engine_release.quickstart,\n\nThe brain cannot go back.\n"

func TestLineFilter_devOverridesWarningOnce(t *testing.T) {
	for _, boxed := range []bool{false, true} {
		var stdout, stderr bytes.Buffer
		once := &shownOnce{}
		out, errw := once.filter(&stdout), once.filter(&stderr)
		// The first command's warning arrives on stderr in pieces; the later ones on stdout.
		first := "$ terraform plan\n" + devOverrides(boxed) + "data.engine_upgrade_path.next: Reading...\n"
		for _, piece := range []string{first[:7], first[7:60], first[60:]} {
			if _, err := errw.Write([]byte(piece)); err != nil {
				t.Fatal(err)
			}
		}
		for range 3 {
			if _, err := out.Write([]byte("$ terraform apply\n" + devOverrides(boxed) + "engine_release.x: Creating...\n" + otherWarning + "\nApply complete!")); err != nil {
				t.Fatal(err)
			}
			if _, err := out.Write([]byte("\n")); err != nil {
				t.Fatal(err)
			}
		}
		out.flush()
		errw.flush()
		all := stderr.String() + stdout.String()
		if n := strings.Count(all, devOverridesWarning); n != 1 {
			t.Errorf("boxed=%v: the dev_overrides warning was shown %d times, want once:\n%s", boxed, n, all)
		}
		if !strings.HasPrefix(stderr.String(), "$ terraform plan\n"+devOverrides(boxed)) {
			t.Errorf("boxed=%v: the first dev_overrides warning was not shown whole:\n%s", boxed, stderr.String())
		}
		want := "$ terraform apply\nengine_release.x: Creating...\n" + otherWarning + "\nApply complete!\n"
		if stdout.String() != strings.Repeat(want, 3) {
			t.Errorf("boxed=%v: the rest of the output changed: got\n%q\nwant 3 times\n%q", boxed, stdout.String(), want)
		}
	}
}

// `make demo | tee log` or a CI log: no terminal, so the demo asks terraform for no colour.
func TestIsTerminal_pipeAndFile(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	f, err := os.Create(t.TempDir() + "/log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, file := range []*os.File{w, f} {
		if isTerminal(file) {
			t.Errorf("%s counts as a terminal: terraform would colour a log", file.Name())
		}
	}
}
