package ingest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Verification failures. The first two are the caller's malformed request
// (400); the last two a request we cannot trust (401).
var (
	ErrMissingSignature   = errors.New("missing signature header")
	ErrMalformedSignature = errors.New("malformed signature header")
	ErrSignatureMismatch  = errors.New("signature matches no configured secret")
	ErrTimestampTolerance = errors.New("signature timestamp outside tolerance")
)

// signedHeader is the parsed `t=…,v1=…[,v1=…]` form both providers use.
type signedHeader struct {
	ts   time.Time
	sigs [][]byte
}

// parseSignedHeader parses `t=<ts>,v1=<hex>…`, spaces after commas allowed.
// unit converts t to a time (WorkOS: ms, Stripe: s). Unknown schemes (v0)
// are ignored; at least one v1 is required.
func parseSignedHeader(h string, unit time.Duration) (signedHeader, error) {
	var out signedHeader
	if strings.TrimSpace(h) == "" {
		return out, ErrMissingSignature
	}
	haveT := false
	for _, part := range strings.Split(h, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return out, ErrMalformedSignature
		}
		switch k {
		case "t":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 || haveT {
				return out, ErrMalformedSignature
			}
			// Guard the multiplication: an absurd t must not overflow into
			// a plausible time.
			if n > int64(1<<62)/int64(unit) {
				return out, ErrMalformedSignature
			}
			out.ts = time.Unix(0, n*int64(unit))
			haveT = true
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) != sha256.Size {
				return out, ErrMalformedSignature
			}
			out.sigs = append(out.sigs, sig)
		}
	}
	if !haveT || len(out.sigs) == 0 {
		return out, ErrMalformedSignature
	}
	return out, nil
}

// verifySigned checks a `<t>.<body>` HMAC-SHA256 against every secret and
// every v1 signature, in constant time, and the timestamp in both
// directions.
func verifySigned(h signedHeader, tsText string, body []byte, secrets [][]byte, tolerance time.Duration, now time.Time) error {
	matched := false
	for _, secret := range secrets {
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(tsText))
		mac.Write([]byte{'.'})
		mac.Write(body)
		want := mac.Sum(nil)
		for _, sig := range h.sigs {
			if hmac.Equal(want, sig) {
				matched = true
			}
		}
	}
	if !matched {
		return ErrSignatureMismatch
	}
	if d := now.Sub(h.ts); d > tolerance || d < -tolerance {
		return ErrTimestampTolerance
	}
	return nil
}

// timestampText returns the exact t value as sent, since the signature
// covers its text, not its number.
func timestampText(h string) string {
	for _, part := range strings.Split(h, ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(part), "t="); ok {
			return v
		}
	}
	return ""
}

// splitSecrets turns a comma-separated list into secrets, dropping blanks.
func splitSecrets(list string) [][]byte {
	var out [][]byte
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, []byte(s))
		}
	}
	return out
}

// sign computes a v1 signature; used by the sample signer and tests.
func sign(secret []byte, tsText string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(tsText))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}
