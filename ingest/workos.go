package ingest

import (
	"net/http"
	"time"

	"github.com/syncd/syncd/events"
	"github.com/syncd/syncd/stream"
)

// workOS verifies `WorkOS-Signature: t=<unix ms>, v1=<hex>`. The SDK's
// ValidatePayload is not used: it panics on some malformed headers, needs
// the space, accepts future timestamps and compares with ==.
type workOS struct {
	secrets   [][]byte
	tolerance time.Duration
}

func (w workOS) source() string   { return stream.SourceWorkOS }
func (w workOS) endpoint() string { return "" }

func (w workOS) verify(h http.Header, body []byte, now time.Time) error {
	return VerifyWorkOS(h.Get("WorkOS-Signature"), body, w.secrets, w.tolerance, now)
}

func (w workOS) decode(body []byte) (events.Envelope, error) { return events.DecodeWorkOS(body) }

// VerifyWorkOS checks a WorkOS-Signature header value against body.
func VerifyWorkOS(header string, body []byte, secrets [][]byte, tolerance time.Duration, now time.Time) error {
	h, err := parseSignedHeader(header, time.Millisecond)
	if err != nil {
		return err
	}
	return verifySigned(h, timestampText(header), body, secrets, tolerance, now)
}

// SignWorkOS builds a WorkOS-Signature header value for body at time t, for
// the sample sender and tests.
func SignWorkOS(secret string, body []byte, t time.Time) string {
	ts := formatInt(t.UnixMilli())
	return "t=" + ts + ", v1=" + sign([]byte(secret), ts, body)
}
