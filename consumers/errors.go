package consumers

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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
// drivers and the retry policy. What the event itself is at fault for is
// permanent; what the infrastructure is at fault for is transient. An error
// nothing here recognises counts as permanent, so an unforeseen bug
// dead-letters its event after the bounded attempts instead of stalling
// the stream; the consumer additionally only counts a permanent failure
// when the rest of its batch commits, which proves Postgres was there.
func Classify(err error) Class {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrPanic):
		// Before the rest: a recovered panic is the event's fault however
		// the error it carried would read.
		return Permanent
	case errors.Is(err, ErrUndecodable):
		return Undecodable
	case errors.Is(err, ErrInvariant):
		return Permanent
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return Transient
	}
	// Checked before PgError: a server that refuses a new connection
	// (starting up, database not accepting connections, too many clients,
	// authentication being rotated) answers with a PgError inside the
	// ConnectError, and no event is at fault for that.
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) {
		return Transient
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return classifyPg(pgErr.Code)
	}
	if isConnectionLoss(err) || isNATS(err) {
		return Transient
	}
	return Permanent
}

// classifyPg sorts a Postgres SQLSTATE.
func classifyPg(code string) Class {
	if len(code) < 2 {
		return Permanent
	}
	switch code[:2] {
	case "08", // connection exception
		"40", // transaction rollback: serialization failure, deadlock
		"53", // insufficient resources: disk full, out of memory, too many connections
		"57", // operator intervention: admin shutdown, crash shutdown, cannot connect now, statement timeout
		"58": // system error: I/O error
		return Transient
	}
	switch code {
	case "55P03", // lock not available (lock_timeout)
		"55006", // object in use
		"25006": // read-only transaction: connected to a standby during a failover
		return Transient
	}
	// Data exceptions (22), integrity violations (23), undefined objects
	// (42: a schema that does not fit the event yet) and the rest are about
	// the event or the code, not the moment.
	return Permanent
}

// isConnectionLoss recognises a connection that broke or could not be
// made, which pgx reports without a PgError.
func isConnectionLoss(err error) bool {
	var netErr net.Error
	switch {
	case errors.As(err, &netErr),
		pgconn.SafeToRetry(err),
		pgconn.Timeout(err),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, syscall.EPIPE),
		errors.Is(err, pgx.ErrTxClosed):
		return true
	}
	return false
}

// isNATS recognises a failure to talk to JetStream: publishing a dead
// letter or settling a message.
func isNATS(err error) bool {
	var apiErr *jetstream.APIError
	switch {
	case errors.As(err, &apiErr),
		errors.Is(err, nats.ErrTimeout),
		errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, nats.ErrConnectionClosed),
		errors.Is(err, nats.ErrConnectionDraining),
		errors.Is(err, nats.ErrConnectionReconnecting),
		errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, nats.ErrInvalidConnection),
		errors.Is(err, nats.ErrStaleConnection),
		errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, jetstream.ErrJetStreamNotEnabled),
		errors.Is(err, jetstream.ErrAsyncPublishTimeout):
		return true
	}
	return false
}
