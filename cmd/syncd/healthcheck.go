package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/syncd/syncd/service"
)

func healthcheckCommand() *cobra.Command {
	var base string
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "healthcheck",
		Short: "exit 0 when the running syncd answers /readyz with 200 (for HEALTHCHECK)",
		Args:  noArgs,
	}
	d := declare(c)
	d.String(&base, "url", "", "", "base URL of the running syncd (default from HTTP_ADDR)", optional(httpURL))
	d.Duration(&timeout, "timeout", "", 3*time.Second, "give up after this long", positive)
	c.RunE = action(func(c *cobra.Command, _ []string) error {
		return healthcheck(c.Context(), cmp.Or(base, localURL(env("HTTP_ADDR", service.HTTPAddrDefault))), timeout, c.OutOrStdout())
	})
	return c
}

// healthcheck asks a running syncd whether it is ready: exit 0 when
// /readyz answers 200, 1 otherwise. It exists for the container's
// HEALTHCHECK, since the distroless image has no shell or curl.
func healthcheck(ctx context.Context, base string, timeout time.Duration, stdout io.Writer) error {
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
