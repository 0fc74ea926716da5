package upgrade

import (
	"testing"
	"time"
)

func TestWindow(t *testing.T) {
	w, err := ParseWindow([]string{"tue", "thu"}, "02:00", "04:00")
	if err != nil {
		t.Fatal(err)
	}
	mon := time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC) // a Monday
	if w.Contains(mon) {
		t.Fatal("monday 03:00 inside a tue/thu window")
	}
	if got, want := w.NextOpening(mon), time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("next opening %v, want %v", got, want)
	}
	tue := time.Date(2026, 12, 1, 3, 59, 0, 0, time.UTC)
	if !w.Contains(tue) || !w.NextOpening(tue).Equal(tue) {
		t.Fatal("tuesday 03:59 not inside")
	}
	if w.Contains(time.Date(2026, 12, 1, 4, 0, 0, 0, time.UTC)) {
		t.Fatal("end is exclusive")
	}
	if w.String() != "tue,thu 02:00-04:00 UTC" {
		t.Fatalf("String() = %q", w.String())
	}
}

func TestWindowWrapsMidnight(t *testing.T) {
	w, err := ParseWindow([]string{"fri"}, "22:00", "02:00")
	if err != nil {
		t.Fatal(err)
	}
	fri := time.Date(2026, 12, 4, 23, 0, 0, 0, time.UTC)
	sat := time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)
	if !w.Contains(fri) || !w.Contains(sat) {
		t.Fatal("wrapping window misses friday night / saturday early")
	}
	if w.Contains(time.Date(2026, 12, 5, 23, 0, 0, 0, time.UTC)) {
		t.Fatal("saturday night is not in a friday window")
	}
}

func TestParseWindowErrors(t *testing.T) {
	for _, c := range []struct {
		days       []string
		start, end string
	}{{nil, "01:00", "02:00"}, {[]string{"funday"}, "01:00", "02:00"}, {[]string{"mon"}, "25:00", "02:00"}, {[]string{"mon"}, "01:00", "2pm"}} {
		if _, err := ParseWindow(c.days, c.start, c.end); err == nil {
			t.Errorf("ParseWindow(%v, %q, %q) accepted bad input", c.days, c.start, c.end)
		}
	}
}
