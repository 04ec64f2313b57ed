package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"
)

// runHealthcheck asks a running syncd whether it is ready: exit 0 when
// /readyz answers 200, 1 otherwise. It exists for the container's
// HEALTHCHECK, since the distroless image has no shell or curl.
func runHealthcheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	var base string
	var timeout time.Duration
	declare(fs).String(&base, "url", "", localURL(env("HTTP_ADDR", ":8080")), "base URL of the running syncd (default from HTTP_ADDR)")
	declare(fs).Duration(&timeout, "timeout", "", 3*time.Second, "give up after this long")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("unexpected argument %q", fs.Arg(0))
	}
	if timeout <= 0 {
		return usageError("--timeout %s: want a positive duration", timeout)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
	if err != nil {
		return usageError("--url %q: %v", base, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("readyz: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("readyz: %s", resp.Status)
	}
	fmt.Fprintln(stdout, "ready")
	return nil
}
