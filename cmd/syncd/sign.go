package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/syncd/syncd/ingest"
	"github.com/syncd/syncd/service"
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

func (s *signFlags) register(c *cobra.Command) {
	d := declare(c)
	d.String(&s.secret, "secret", "", "", "signing secret (default: the first of the provider's *_WEBHOOK_SECRET)")
	d.Bool(&s.freshID, "fresh-id", "", false, "give the event a new random id, so each send is a distinct event")
}

// providerAndFile are sign's and send's arguments: PROVIDER FILE, the
// provider completed by the shell.
func providerAndFile(c *cobra.Command) {
	c.Args = func(_ *cobra.Command, args []string) error {
		if len(args) != 2 {
			return usageError("want PROVIDER FILE (provider: workos, stripe or stripe-connect)")
		}
		if _, ok := signTargets[args[0]]; !ok {
			return usageError("unknown provider %q: want workos, stripe or stripe-connect", args[0])
		}
		return nil
	}
	c.ValidArgsFunction = func(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) == 0 {
			return slices.Sorted(maps.Keys(signTargets)), cobra.ShellCompDirectiveNoFileComp
		}
		return nil, cobra.ShellCompDirectiveDefault
	}
}

// load reads the file and signs it for the named provider.
func (s *signFlags) load(provider, file string) (signTarget, []byte, string, error) {
	t := signTargets[provider] // checked by providerAndFile
	body, err := os.ReadFile(file)
	if err != nil {
		return t, nil, "", usageError("read %s: %v", file, err)
	}
	if s.freshID {
		if body, err = withFreshID(body, provider); err != nil {
			return t, nil, "", usageError("%s: %v", file, err)
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

func signCommand() *cobra.Command {
	var s signFlags
	c := &cobra.Command{
		Use:   "sign [flags] PROVIDER FILE",
		Short: "print a signature header for a file, for curl",
		Long: "Prints the signature header value for FILE, e.g.\n" +
			`  curl -H "WorkOS-Signature: $(syncd sign workos ev.json)" --data-binary @ev.json localhost:8080/webhooks/workos`,
	}
	providerAndFile(c)
	s.register(c)
	c.RunE = action(func(c *cobra.Command, args []string) error {
		if s.freshID {
			return usageError("--fresh-id changes the body, so it only works with send")
		}
		_, _, sig, err := s.load(args[0], args[1])
		if err != nil {
			return err
		}
		fmt.Fprintln(c.OutOrStdout(), sig)
		return nil
	})
	return c
}

func sendCommand() *cobra.Command {
	var s signFlags
	var base string
	c := &cobra.Command{
		Use:   "send [flags] PROVIDER FILE",
		Short: "sign a file and POST it to a running syncd",
		Long:  "Signs FILE with the provider's secret and POSTs it to the provider's route.",
	}
	providerAndFile(c)
	s.register(c)
	declare(c).String(&base, "url", "", "", "base URL of the running syncd (default from HTTP_ADDR)", optional(httpURL))
	c.RunE = action(func(c *cobra.Command, args []string) error {
		return s.send(c.Context(), cmp.Or(base, localURL(env("HTTP_ADDR", service.HTTPAddrDefault))), args[0], args[1], c.OutOrStdout())
	})
	return c
}

func (s *signFlags) send(ctx context.Context, base, provider, file string, stdout io.Writer) error {
	t, body, sig, err := s.load(provider, file)
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
