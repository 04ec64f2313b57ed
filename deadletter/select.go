package deadletter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

var (
	// ErrNoMatch means a selection named no dead letter.
	ErrNoMatch = errors.New("no dead letters match")
	// ErrBadSelection wraps what Validate refuses.
	ErrBadSelection = errors.New("bad selection")
)

// MissingError lists the sequences of a selection that are not in
// DEADLETTER; it wraps ErrNotFound.
type MissingError struct{ Seqs []uint64 }

func (e *MissingError) Error() string {
	s := make([]string, len(e.Seqs))
	for i, n := range e.Seqs {
		s[i] = strconv.FormatUint(n, 10)
	}
	return "no dead letter with sequence " + strings.Join(s, ", ")
}

func (e *MissingError) Unwrap() error { return ErrNotFound }

// Selection names the dead letters a retry or purge acts on: sequences,
// or every dead letter Filter matches.
type Selection struct {
	Seqs   []uint64
	All    bool
	Filter Filter
}

// Validate reports a selection that is ambiguous or empty by construction.
func (s Selection) Validate() error {
	switch {
	case s.All && len(s.Seqs) > 0:
		return errors.New("give sequences or all, not both")
	case !s.All && len(s.Seqs) == 0:
		return errors.New("name the dead letters: sequences, or all (narrowed by filters)")
	case len(s.Seqs) > 0 && !s.Filter.IsZero():
		return errors.New("filters narrow all; with sequences drop the filters")
	}
	for _, n := range s.Seqs {
		if n == 0 {
			return errors.New("sequence 0: sequences start at 1")
		}
	}
	return s.Filter.Validate()
}

// Select resolves sel into letters, oldest first for All and in the order
// given for sequences. An unknown sequence (a *MissingError) or an empty
// match (ErrNoMatch) is an error, so nothing is changed on bad input.
func (s *Store) Select(ctx context.Context, sel Selection) ([]Letter, error) {
	if err := sel.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSelection, err)
	}
	if sel.All {
		letters, err := s.List(ctx, sel.Filter)
		if err != nil {
			return nil, err
		}
		if len(letters) == 0 {
			return nil, ErrNoMatch
		}
		return letters, nil
	}
	letters := make([]Letter, 0, len(sel.Seqs))
	var missing []uint64
	seen := map[uint64]bool{}
	for _, seq := range sel.Seqs {
		if seen[seq] {
			continue
		}
		seen[seq] = true
		l, err := s.Get(ctx, seq)
		if errors.Is(err, ErrNotFound) {
			missing = append(missing, seq)
			continue
		}
		if err != nil {
			return nil, err
		}
		letters = append(letters, l)
	}
	if len(missing) > 0 {
		return nil, &MissingError{Seqs: missing}
	}
	return letters, nil
}
