package events

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// WhenForms names the forms ParseWhen accepts, for error messages.
const WhenForms = "want an RFC 3339 time (2026-01-15T12:00:00Z), a date (2026-01-15) or a duration ago (90m, 36h, 7d)"

// ParseDays reads a duration in days (365d, 1d12h) or a Go duration
// (8760h, 90m), at most maxDays days in the days form. The CLI's
// retention flags and ParseWhen's durations ago both read it.
func ParseDays(s string, maxDays int) (time.Duration, error) {
	s = strings.TrimSpace(s)
	bad := fmt.Errorf("want days (%dd at most) or a duration (8760h)", maxDays)
	days, rest, ok := strings.Cut(s, "d")
	if !ok {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, bad
		}
		return d, nil
	}
	n, err := strconv.Atoi(days)
	if err != nil || days == "" || strings.Trim(days, "0123456789") != "" || n > maxDays {
		return 0, bad
	}
	d := time.Duration(n) * 24 * time.Hour
	if rest != "" {
		extra, err := time.ParseDuration(rest)
		if err != nil || extra < 0 {
			return 0, bad
		}
		d += extra
	}
	return d, nil
}

// ParseWhen reads a time an operator typed: RFC 3339, a date, the
// providers' other forms (ParseTime), or a duration ago (90m, 36h, 7d,
// 1d12h) counted back from now. Empty is the zero time. The CLI's time
// flags and the console's forms both read times here, so they agree.
func ParseWhen(value string, now time.Time) (time.Time, error) {
	value = strings.TrimSpace(value)
	if value == "" {
		return time.Time{}, nil
	}
	// Ten years back at most: older is no stream's or provider's history.
	ago, err := ParseDays(value, 3650)
	isAgo := err == nil
	if isAgo {
		if ago <= 0 {
			return time.Time{}, errors.New("a duration ago must be positive")
		}
		return now.Add(-ago), nil
	}
	t, err := ParseTime(value)
	if err != nil {
		return time.Time{}, errors.New(WhenForms)
	}
	if t.Year() < 2000 {
		return time.Time{}, errors.New("before the year 2000; a stream sequence goes in --from-seq/--to-seq")
	}
	return t, nil
}
