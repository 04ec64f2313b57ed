package consumers

import (
	"context"
	"errors"
	"net"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Class is how a failure is handled.
type Class string

const (
	// Transient failures (Postgres unreachable, serialization failure,
	// deadlock, timeouts, NATS errors) are retried with backoff for as long
	// as it takes and never count toward dead-lettering.
	Transient Class = "transient"
	// Permanent failures (a violated invariant) are retried a bounded number
	// of times, then dead-lettered.
	Permanent Class = "permanent"
	// Undecodable payloads cannot succeed on retry: dead-lettered at once.
	Undecodable Class = "undecodable"
)

var (
	// ErrUndecodable marks a payload that cannot be decoded.
	ErrUndecodable = errors.New("undecodable payload")
	// ErrInvariant marks an event that violates an invariant of the data.
	ErrInvariant = errors.New("violated invariant")
)

// Classify sorts an apply error into its class at the boundary between the
// drivers and the retry policy.
func Classify(err error) Class {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrUndecodable):
		return Undecodable
	case errors.Is(err, ErrInvariant):
		return Permanent
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return Transient
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "08", // connection exception
			"53", // insufficient resources
			"57", // operator intervention: admin shutdown, query canceled
			"58", // system error
			"40": // serialization failure, deadlock
			return Transient
		}
		if pgErr.Code == "55P03" { // lock not available
			return Transient
		}
		return Permanent
	}
	var netErr net.Error
	if errors.As(err, &netErr) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return Transient
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) {
		return Transient
	}
	// A closed or broken connection surfaces from pgx without a PgError.
	if errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, pgx.ErrTxClosed) {
		return Transient
	}
	return Permanent
}
