package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealthcheckFollowsReadyz(t *testing.T) {
	ready := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		if !ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()

	if code, out, stderr := runCmd(t, "healthcheck", "--url", srv.URL); code != 0 || !strings.Contains(out, "ready") {
		t.Fatalf("ready server: exit %d, out %q, stderr %q; want 0", code, out, stderr)
	}
	ready = false
	if code, _, stderr := runCmd(t, "healthcheck", "--url", srv.URL); code != 1 || !strings.Contains(stderr, "503") {
		t.Fatalf("not ready server: exit %d, stderr %q; want 1 naming the status", code, stderr)
	}
	srv.Close()
	if code, _, _ := runCmd(t, "healthcheck", "--url", srv.URL); code != 1 {
		t.Fatalf("no server: exit %d, want 1", code)
	}
	if code, _, stderr := runCmd(t, "healthcheck", "--timeout", "0s"); code != 2 || !strings.Contains(stderr, "--timeout") {
		t.Fatalf("bad timeout: exit %d, stderr %q; want 2", code, stderr)
	}
}
