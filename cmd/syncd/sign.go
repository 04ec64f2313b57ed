package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/syncd/syncd/ingest"
)

// signTarget is one webhook endpoint's header, secret variable and route.
type signTarget struct {
	header, secretEnv, path string
	sign                    func(secret string, body []byte, t time.Time) string
}

var signTargets = map[string]signTarget{
	"workos":         {"WorkOS-Signature", "WORKOS_WEBHOOK_SECRET", "/webhooks/workos", ingest.SignWorkOS},
	"stripe":         {"Stripe-Signature", "STRIPE_WEBHOOK_SECRET", "/webhooks/stripe", ingest.SignStripe},
	"stripe-connect": {"Stripe-Signature", "STRIPE_CONNECT_WEBHOOK_SECRET", "/webhooks/stripe/connect", ingest.SignStripe},
}

type signFlags struct {
	secret  string
	freshID bool
}

func (s *signFlags) register(fs *flag.FlagSet) {
	declare(fs).String(&s.secret, "secret", "", "", "signing secret (default: the first of the provider's *_WEBHOOK_SECRET)")
	declare(fs).Bool(&s.freshID, "fresh-id", "", false, "give the event a new random id, so each send is a distinct event")
}

// load reads the file and signs it for the named provider.
func (s *signFlags) load(fs *flag.FlagSet) (signTarget, []byte, string, error) {
	if fs.NArg() != 2 {
		return signTarget{}, nil, "", usageError("want PROVIDER FILE (provider: workos, stripe or stripe-connect)")
	}
	t, ok := signTargets[fs.Arg(0)]
	if !ok {
		return t, nil, "", usageError("unknown provider %q: want workos, stripe or stripe-connect", fs.Arg(0))
	}
	body, err := os.ReadFile(fs.Arg(1))
	if err != nil {
		return t, nil, "", usageError("read %s: %v", fs.Arg(1), err)
	}
	if s.freshID {
		if body, err = withFreshID(body, fs.Arg(0)); err != nil {
			return t, nil, "", usageError("%s: %v", fs.Arg(1), err)
		}
	}
	secret := s.secret
	if secret == "" {
		secret, _, _ = strings.Cut(os.Getenv(t.secretEnv), ",")
	}
	if secret = strings.TrimSpace(secret); secret == "" {
		return t, nil, "", usageError("no secret: set %s or pass --secret", t.secretEnv)
	}
	return t, body, t.sign(secret, body, time.Now()), nil
}

func withFreshID(body []byte, provider string) ([]byte, error) {
	var ev map[string]any
	if err := json.Unmarshal(body, &ev); err != nil || ev == nil {
		return nil, fmt.Errorf("not a JSON object")
	}
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	prefix := "event_"
	if provider != "workos" {
		prefix = "evt_"
	}
	ev["id"] = prefix + strings.ToUpper(hex.EncodeToString(b))
	return json.Marshal(ev)
}

func runSign(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var s signFlags
	fs := flag.NewFlagSet("sign", flag.ContinueOnError)
	s.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: syncd sign [flags] PROVIDER FILE\n\nPrints the signature header value for FILE, e.g.\n  curl -H \"WorkOS-Signature: $(syncd sign workos ev.json)\" --data-binary @ev.json localhost:8080/webhooks/workos")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if s.freshID {
		return usageError("--fresh-id changes the body, so it only works with send")
	}
	_, _, sig, err := s.load(fs)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, sig)
	return nil
}

func runSend(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var s signFlags
	var base string
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	s.register(fs)
	declare(fs).String(&base, "url", "", localURL(env("HTTP_ADDR", ":8080")), "base URL of the running syncd (default from HTTP_ADDR)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: syncd send [flags] PROVIDER FILE\n\nSigns FILE with the provider's secret and POSTs it to the provider's route.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	t, body, sig, err := s.load(fs)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+t.path, bytes.NewReader(body))
	if err != nil {
		return usageError("--url %q: %v", base, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(t.header, sig)
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("post %s: %w", req.URL, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	fmt.Fprintf(stdout, "%s %s\n%s\n", resp.Status, req.URL, bytes.TrimSpace(out))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("syncd answered %s", resp.Status)
	}
	return nil
}

// localURL turns a listen address into a URL a local client can call: an
// empty or wildcard host becomes localhost.
func localURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://localhost:8080"
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}
