package workosapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/workos/workos-go/v4/pkg/workos_errors"
)

// Error is a failed WorkOS call: the endpoint, what WorkOS answered and the
// request id to quote to WorkOS support.
type Error struct {
	// Endpoint is the call, e.g. "POST /organizations".
	Endpoint string
	// Status is the HTTP status; 0 when no answer arrived.
	Status int
	// Code is WorkOS's error code ("user_creation_error", "entity_not_found").
	Code string
	// Details are the codes of the nested errors WorkOS lists
	// ("email_not_available").
	Details   []string
	Message   string
	RequestID string
	// Err is the underlying error: the SDK's HTTPError, or a transport
	// failure when Status is 0.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("workos ")
	b.WriteString(e.Endpoint)
	b.WriteString(": ")
	if e.Status == 0 {
		b.WriteString(e.Err.Error())
		return b.String()
	}
	fmt.Fprintf(&b, "%d", e.Status)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if len(e.Details) > 0 {
		b.WriteString(" (" + strings.Join(e.Details, ", ") + ")")
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.RequestID != "" {
		b.WriteString(" [request id " + e.RequestID + "]")
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Codes WorkOS answers that callers act on.
const (
	CodeUserCreation      = "user_creation_error"
	CodeEmailNotAvailable = "email_not_available"
	CodeEntityNotFound    = "entity_not_found"
)

// wrapErr turns what an SDK call returned into an *Error naming the
// endpoint; nil stays nil.
func wrapErr(endpoint string, err error) error {
	if err == nil {
		return nil
	}
	var existing *Error
	if errors.As(err, &existing) {
		return err
	}
	e := &Error{Endpoint: endpoint, Err: err}
	var h workos_errors.HTTPError
	var hp *workos_errors.HTTPError
	switch {
	case errors.As(err, &h):
	case errors.As(err, &hp):
		h = *hp
	default:
		return e
	}
	e.Status, e.Code, e.Message, e.RequestID = h.Code, h.ErrorCode, h.Message, h.RequestID
	// The SDK keeps only the messages of nested errors; their codes (the
	// one that says the email is taken) are in the raw body.
	var body struct {
		Code   string `json:"code"`
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	if json.Unmarshal([]byte(h.RawBody), &body) == nil {
		if e.Code == "" {
			e.Code = body.Code
		}
		for _, d := range body.Errors {
			if d.Code != "" {
				e.Details = append(e.Details, d.Code)
			}
		}
	}
	return e
}

func asError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// IsNotFound reports a 404: the object does not exist.
func IsNotFound(err error) bool {
	e, ok := asError(err)
	return ok && e.Status == 404
}

// IsEmailTaken reports WorkOS refusing a user because another holds the
// email: 400 user_creation_error with an email_not_available detail.
func IsEmailTaken(err error) bool {
	e, ok := asError(err)
	if !ok || e.Status != 400 {
		return false
	}
	if e.Code == CodeEmailNotAvailable {
		return true
	}
	for _, d := range e.Details {
		if d == CodeEmailNotAvailable {
			return true
		}
	}
	return false
}

// IsTransient reports a failure worth retrying later: no answer (network,
// timeout), a 429, a 5xx, or a 408. Everything else WorkOS answered is the
// request's fault and will fail again.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.Is(err, ErrNotVisible) {
		return true
	}
	e, ok := asError(err)
	if !ok || e.Status == 0 {
		// No answer: the request never got through or the connection
		// broke. An answer that did not decode is not retried.
		var netErr net.Error
		var urlErr *url.Error
		return errors.As(err, &netErr) || errors.As(err, &urlErr)
	}
	switch {
	case e.Status == 408, e.Status == 429, e.Status >= 500:
		return true
	}
	return false
}
