package events

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// WhenForms names the forms ParseWhen accepts, for error messages.
const WhenForms = "want an RFC 3339 time (2026-01-15T12:00:00Z), a date (2026-01-15) or a duration ago (90m, 36h, 7d)"

var daysAgo = regexp.MustCompile(`^(\d+)d(.*)$`)

// ParseWhen reads a time an operator typed: RFC 3339, a date, the
// providers' other forms (ParseTime), or a duration ago (90m, 36h, 7d,
// 1d12h) counted back from now. Empty is the zero time. The CLI's time
// flags and the console's forms both read times here, so they agree.
func ParseWhen(value string, now time.Time) (time.Time, error) {
	value = strings.TrimSpace(value)
	if value == "" {
		return time.Time{}, nil
	}
	var ago time.Duration
	isAgo := false
	if m := daysAgo.FindStringSubmatch(value); m != nil {
		days, err := strconv.Atoi(m[1])
		if err != nil || days > 3650 {
			return time.Time{}, errors.New(WhenForms)
		}
		ago, isAgo = time.Duration(days)*24*time.Hour, true
		if m[2] != "" {
			d, err := time.ParseDuration(m[2])
			if err != nil {
				return time.Time{}, errors.New(WhenForms)
			}
			ago += d
		}
	} else if d, err := time.ParseDuration(value); err == nil {
		ago, isAgo = d, true
	}
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
