package ingest

import (
	"net/http"
	"time"

	"github.com/syncd/syncd/events"
	"github.com/syncd/syncd/stream"
)

// stripe verifies `Stripe-Signature: t=<unix s>,v1=<hex>[,v1=…][,v0=…]`.
// stripe-go's ConstructEvent is not used: it rejects every API version but
// its own, and its ValidatePayload takes one secret and accepts future
// timestamps. Any v1 under any configured secret is accepted.
type stripe struct {
	secrets   [][]byte
	tolerance time.Duration
	connect   bool
}

func (s stripe) source() string { return stream.SourceStripe }

func (s stripe) endpoint() string {
	if s.connect {
		return "connect"
	}
	return "platform"
}

func (s stripe) verify(h http.Header, body []byte, now time.Time) error {
	return VerifyStripe(h.Get("Stripe-Signature"), body, s.secrets, s.tolerance, now)
}

func (s stripe) decode(body []byte) (events.Envelope, error) { return events.DecodeStripe(body) }

// VerifyStripe checks a Stripe-Signature header value against body.
func VerifyStripe(header string, body []byte, secrets [][]byte, tolerance time.Duration, now time.Time) error {
	h, err := parseSignedHeader(header, time.Second)
	if err != nil {
		return err
	}
	return verifySigned(h, timestampText(header), body, secrets, tolerance, now)
}

// SignStripe builds a Stripe-Signature header value for body at time t, for
// the sample sender. Tests sign with stripe-go's GenerateTestSignedPayload.
func SignStripe(secret string, body []byte, t time.Time) string {
	ts := formatInt(t.Unix())
	return "t=" + ts + ",v1=" + sign([]byte(secret), ts, body)
}
