package main

import (
	"bytes"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
)

// devOverridesWarning is the summary of the warning terraform prints on every command run
// through dev_overrides, as the demo's are.
const devOverridesWarning = "Provider development overrides are in effect"

// isTerminal reports whether f is a terminal; terraform's colours are only for one.
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// shownOnce is shared by the filters of one run (terraform's stdout and stderr), so the
// dev_overrides warning is shown once whichever stream carries it.
type shownOnce struct {
	mu   sync.Mutex
	seen bool
}

func (s *shownOnce) filter(w io.Writer) *lineFilter { return &lineFilter{w: w, once: s} }

// first reports whether this is the first time; it marks it seen.
func (s *shownOnce) first() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	first := !s.seen
	s.seen = true
	return first
}

// lineFilter passes output through line by line, dropping the dev_overrides warning after its
// first appearance. The warning runs from its "Warning:" line to the line ending in "releases.",
// with the blank line (or the box's top, in colour) before it and the box's bottom after it.
type lineFilter struct {
	w    io.Writer
	once *shownOnce

	mu      sync.Mutex
	partial []byte // the line being written
	pre     []byte // a blank line held back: it belongs to the warning if one follows
	warning []byte // the warning so far, while state is not idle
	state   int
}

const (
	idle         = iota
	inWarning    // between its "Warning:" line and "releases."
	afterWarning // its last line seen; a box's bottom line may follow
)

func (f *lineFilter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.partial = append(f.partial, p...)
	for {
		i := bytes.IndexByte(f.partial, '\n')
		if i < 0 {
			break
		}
		line := append([]byte(nil), f.partial[:i+1]...)
		f.partial = f.partial[i+1:]
		if err := f.line(line); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (f *lineFilter) line(line []byte) error {
	text := plainText(line)
	switch f.state {
	case inWarning:
		f.warning = append(f.warning, line...)
		if strings.HasSuffix(text, "releases.") {
			f.state = afterWarning
		} else if bytes.Count(f.warning, []byte("\n")) > 20 {
			// Not the text this filter knows: show it all rather than lose anything.
			f.state = idle
			return f.write(f.warning)
		}
		return nil
	case afterWarning:
		if text == "" && bytes.Contains(line, []byte("╵")) {
			f.warning = append(f.warning, line...)
			return f.endWarning()
		}
		if err := f.endWarning(); err != nil {
			return err
		}
	}
	switch {
	case strings.HasPrefix(text, "Warning: "+devOverridesWarning):
		f.state, f.warning, f.pre = inWarning, append(f.pre, line...), nil
		return nil
	case text == "":
		err := f.write(f.pre)
		f.pre = line
		return err
	default:
		err := f.write(append(f.pre, line...))
		f.pre = nil
		return err
	}
}

// endWarning shows the warning held if it is the first, and drops it otherwise.
func (f *lineFilter) endWarning() error {
	w := f.warning
	f.state, f.warning = idle, nil
	if !f.once.first() {
		return nil
	}
	return f.write(append(w, "(engine-demo shows this warning once: every terraform command it runs uses the local build through dev_overrides)\n"...))
}

func (f *lineFilter) write(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	_, err := f.w.Write(b)
	return err
}

// flush writes what is still held: a blank line, a finished warning, a last line without a
// newline.
func (f *lineFilter) flush() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state == afterWarning {
		_ = f.endWarning()
	}
	_ = f.write(append(append(f.pre, f.warning...), f.partial...))
	f.pre, f.warning, f.partial, f.state = nil, nil, nil, idle
}

var ansiEscape = regexp.MustCompile("\x1b\\[[0-9;]*m")

// plainText is a line without colour codes, the box terraform draws around a diagnostic, and
// surrounding space.
func plainText(line []byte) string {
	return strings.Trim(ansiEscape.ReplaceAllString(string(line), ""), " \t\r\n│╷╵")
}

// recorder passes output through and keeps a copy since the last reset: what a terraform
// command wrote to stderr, where a scenario looks for its intended error.
type recorder struct {
	w io.Writer

	mu  sync.Mutex
	buf strings.Builder
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.buf.Write(p)
	r.mu.Unlock()
	return r.w.Write(p)
}

func (r *recorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf.Reset()
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String()
}
