package upgrade

import (
	"fmt"
	"strings"
	"time"
)

// Weekdays are the day names a rollout window accepts, Monday first.
var Weekdays = []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}

var weekdayByName = map[string]time.Weekday{
	"mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday, "thu": time.Thursday,
	"fri": time.Friday, "sat": time.Saturday, "sun": time.Sunday,
}

// Window is a recurring rollout window in UTC: on the given weekdays, from Start to End
// (minutes after midnight). End <= Start wraps past midnight into the next day.
type Window struct {
	Days  map[time.Weekday]bool
	Start int
	End   int
}

// ParseWindow parses weekday names ("mon".."sun") and "HH:MM" start and end times (UTC).
func ParseWindow(days []string, start, end string) (Window, error) {
	w := Window{Days: map[time.Weekday]bool{}}
	if len(days) == 0 {
		return w, fmt.Errorf("a rollout window needs at least one weekday (%s)", strings.Join(Weekdays, ", "))
	}
	for _, d := range days {
		wd, ok := weekdayByName[strings.ToLower(strings.TrimSpace(d))]
		if !ok {
			return w, fmt.Errorf("%q is not a weekday: use one of %s", d, strings.Join(Weekdays, ", "))
		}
		w.Days[wd] = true
	}
	var err error
	if w.Start, err = parseClock(start); err != nil {
		return w, err
	}
	if w.End, err = parseClock(end); err != nil {
		return w, err
	}
	return w, nil
}

func parseClock(s string) (int, error) {
	t, err := time.Parse("15:04", strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("%q is not a UTC time of day: use HH:MM, for example \"02:00\"", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}

// Contains reports whether t falls inside the window.
func (w Window) Contains(t time.Time) bool {
	t = t.UTC()
	mins := t.Hour()*60 + t.Minute()
	if w.End > w.Start {
		return w.Days[t.Weekday()] && mins >= w.Start && mins < w.End
	}
	// Wrapping window: the part after Start belongs to today, the part before End to yesterday.
	if mins >= w.Start && w.Days[t.Weekday()] {
		return true
	}
	return mins < w.End && w.Days[(t.Weekday()+6)%7]
}

// NextOpening returns the next time at or after t when the window opens (t itself when inside).
func (w Window) NextOpening(t time.Time) time.Time {
	t = t.UTC()
	if w.Contains(t) {
		return t
	}
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	for i := 0; i <= 7; i++ {
		d := day.AddDate(0, 0, i)
		open := d.Add(time.Duration(w.Start) * time.Minute)
		if w.Days[d.Weekday()] && !open.Before(t) {
			return open
		}
	}
	return time.Time{}
}

// String renders the window as "mon,tue 02:00-04:00 UTC".
func (w Window) String() string {
	var ds []string
	for _, name := range Weekdays {
		if w.Days[weekdayByName[name]] {
			ds = append(ds, name)
		}
	}
	return fmt.Sprintf("%s %02d:%02d-%02d:%02d UTC", strings.Join(ds, ","), w.Start/60, w.Start%60, w.End/60, w.End%60)
}
