package ingest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	stripewebhook "github.com/stripe/stripe-go/v76/webhook"
	"github.com/workos/workos-go/v4/pkg/webhooks"
)

// sdkWorkOSHeader is the WorkOS SDK's own test vector builder
// (workos-go v4 pkg/webhooks/client_test.go mockWebhookHeader).
func sdkWorkOSHeader(now time.Time, secret string, body string) string {
	stringTime := strconv.FormatInt(now.Round(0).Unix()*1000, 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(stringTime + "." + body))
	return "t=" + stringTime + ", v1=" + hex.EncodeToString(mac.Sum(nil))
}

func TestVerifyWorkOS(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"object":"event","id":"event_1","event":"user.created","data":{}}`)
	secrets := [][]byte{[]byte("secret"), []byte("next")}
	valid := sdkWorkOSHeader(now, "secret", string(body))
	noSpace := strings.Replace(valid, ", ", ",", 1)
	ms := strconv.FormatInt(now.UnixMilli(), 10)
	sig := sign([]byte("secret"), ms, body)

	cases := []struct {
		name   string
		header string
		body   []byte
		now    time.Time
		want   error
	}{
		{"valid, SDK vector", valid, body, now, nil},
		{"valid without the space", noSpace, body, now, nil},
		{"valid with extra spaces", "  t=" + ms + " ,  v1=" + sig + " ", body, now, nil},
		{"rotated secret", sdkWorkOSHeader(now, "next", string(body)), body, now, nil},
		{"one of several v1", "t=" + ms + ", v1=" + strings.Repeat("ab", 32) + ", v1=" + sig, body, now, nil},
		{"wrong secret", sdkWorkOSHeader(now, "other", string(body)), body, now, ErrSignatureMismatch},
		{"empty secret", sdkWorkOSHeader(now, "", string(body)), body, now, ErrSignatureMismatch},
		{"body changed", valid, []byte(`{"x":1}`), now, ErrSignatureMismatch},
		{"empty body", valid, []byte{}, now, ErrSignatureMismatch},
		{"stale", valid, body, now.Add(181 * time.Second), ErrTimestampTolerance},
		{"future", sdkWorkOSHeader(now.Add(181*time.Second), "secret", string(body)), body, now, ErrTimestampTolerance},
		{"edge of tolerance", valid, body, now.Add(180 * time.Second), nil},
		{"seconds instead of ms", "t=" + strconv.FormatInt(now.Unix(), 10) + ", v1=" + sign([]byte("secret"), strconv.FormatInt(now.Unix(), 10), body), body, now, ErrTimestampTolerance},
		{"missing header", "", body, now, ErrMissingSignature},
		{"blank header", "   ", body, now, ErrMissingSignature},
		{"junk", "some_junk", body, now, ErrMalformedSignature},
		{"no v1", "t=" + ms, body, now, ErrMalformedSignature},
		{"no t", "v1=" + sig, body, now, ErrMalformedSignature},
		{"t not a number", "t=abc, v1=" + sig, body, now, ErrMalformedSignature},
		{"t negative", "t=-5, v1=" + sig, body, now, ErrMalformedSignature},
		{"t huge", "t=99999999999999999999, v1=" + sig, body, now, ErrMalformedSignature},
		{"t overflowing ns", "t=9223372036854775, v1=" + sig, body, now, ErrMalformedSignature},
		{"two t", "t=" + ms + ", t=" + ms + ", v1=" + sig, body, now, ErrMalformedSignature},
		{"v1 not hex", "t=" + ms + ", v1=zz", body, now, ErrMalformedSignature},
		{"v1 short", "t=" + ms + ", v1=abcd", body, now, ErrMalformedSignature},
		{"v1 empty", "t=" + ms + ", v1=", body, now, ErrMalformedSignature},
		{"only commas", ",,,", body, now, ErrMalformedSignature},
		{"equals only", "=", body, now, ErrMalformedSignature},
		{"semicolons", "t=" + ms + "; v1=" + sig, body, now, ErrMalformedSignature},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyWorkOS(tc.header, tc.body, secrets, 180*time.Second, tc.now)
			if !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
				t.Fatalf("VerifyWorkOS(%q) = %v, want %v", tc.header, err, tc.want)
			}
		})
	}
}

// TestSignWorkOSMatchesSDK checks our signer against the SDK's verifier,
// so the format is the one WorkOS sends.
func TestSignWorkOSMatchesSDK(t *testing.T) {
	body := `{"id":"event_1"}`
	c := webhooks.NewClient("secret")
	if _, err := c.ValidatePayload(SignWorkOS("secret", []byte(body), time.Now()), body); err != nil {
		t.Fatalf("SDK rejects our signature: %v", err)
	}
}

func TestVerifyStripe(t *testing.T) {
	now := time.Now()
	body := []byte(`{"id":"evt_1","object":"event","type":"customer.created","data":{"object":{}}}`)
	secrets := [][]byte{[]byte("whsec_a"), []byte("whsec_b")}
	signed := func(secret string, at time.Time) string {
		return stripewebhook.GenerateTestSignedPayload(&stripewebhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: at}).Header
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	cases := []struct {
		name   string
		header string
		want   error
	}{
		{"valid", signed("whsec_a", now), nil},
		{"second secret", signed("whsec_b", now), nil},
		{"rolling: two v1, second matches", "t=" + ts + ",v1=" + strings.Repeat("00", 32) + ",v1=" + sign([]byte("whsec_b"), ts, body), nil},
		{"with v0", "t=" + ts + ",v1=" + sign([]byte("whsec_a"), ts, body) + ",v0=" + strings.Repeat("11", 32), nil},
		{"wrong secret", signed("whsec_x", now), ErrSignatureMismatch},
		{"stale", signed("whsec_a", now.Add(-301*time.Second)), ErrTimestampTolerance},
		{"future", signed("whsec_a", now.Add(301*time.Second)), ErrTimestampTolerance},
		{"missing", "", ErrMissingSignature},
		{"only v0", "t=" + ts + ",v0=" + strings.Repeat("11", 32), ErrMalformedSignature},
		{"malformed", "garbage", ErrMalformedSignature},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyStripe(tc.header, body, secrets, 300*time.Second, now)
			if !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
				t.Fatalf("VerifyStripe(%q) = %v, want %v", tc.header, err, tc.want)
			}
		})
	}
}

func FuzzVerifyWorkOS(f *testing.F) {
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"id":"event_1"}`)
	f.Add(sdkWorkOSHeader(now, "secret", string(body)), body)
	f.Add("t=1, v1=", []byte{})
	f.Add("t=,v1=00", []byte("x"))
	f.Add(",=,", []byte("{}"))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		err := VerifyWorkOS(header, body, [][]byte{[]byte("secret")}, 180*time.Second, now)
		// Hex is read in either case: an upper-case digit of the right MAC
		// is the same signature.
		if err == nil && header != sdkWorkOSHeader(now, "secret", string(body)) && !strings.Contains(strings.ToLower(header), sign([]byte("secret"), timestampText(header), body)) {
			t.Fatalf("accepted a header without a valid signature: %q", header)
		}
	})
}

func FuzzVerifyStripe(f *testing.F) {
	now := time.Unix(1_700_000_000, 0)
	f.Add("t=1700000000,v1=00", []byte(`{}`))
	f.Add("t=1700000000,v1=,v1=,v0=", []byte(`{}`))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		err := VerifyStripe(header, body, [][]byte{[]byte("whsec")}, 300*time.Second, now)
		if err == nil && !strings.Contains(strings.ToLower(header), sign([]byte("whsec"), timestampText(header), body)) { // hex in either case
			t.Fatalf("accepted a header without a valid signature: %q", header)
		}
	})
}
