package stream_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/syncd/syncd/stream"
)

// Two processes must never run embedded servers over one store: the second
// is refused, whether it is a serve or another command.
func TestOneEmbeddedServerPerDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	ctx := context.Background()
	first, err := stream.Open(ctx, stream.ConnConfig{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, serve := range []bool{false, true} {
		if c, err := stream.Open(ctx, stream.ConnConfig{DataDir: dir, Serve: serve}); !errors.Is(err, stream.ErrDataDirInUse) {
			if c != nil {
				c.Close()
			}
			t.Fatalf("serve=%v: second embedded server over one store: %v, want ErrDataDirInUse", serve, err)
		}
	}
	first.Close()
	// Released with the first one.
	again, err := stream.Open(ctx, stream.ConnConfig{DataDir: dir, Serve: true})
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	again.Close()
}

// A running serve is reached through the data dir, not duplicated.
func TestCommandsReachTheRunningServe(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	ctx := context.Background()
	serve, err := stream.Open(ctx, stream.ConnConfig{DataDir: dir, Serve: true})
	if err != nil {
		t.Fatal(err)
	}
	defer serve.Close()
	cmd, err := stream.Open(ctx, stream.ConnConfig{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer cmd.Close()
	if cmd.Embedded() {
		t.Fatal("the command started its own server instead of reaching serve's")
	}
}

func TestSubjectToken(t *testing.T) {
	for in, want := range map[string]string{
		"user.created":                  "user.created",
		"customer.subscription.updated": "customer.subscription.updated",
		"":                              "_",
		"a..b":                          "a._.b",
		".a.":                           "_.a._",
		"a b*>":                         "a_b__",
	} {
		if got := stream.SubjectToken(in); got != want {
			t.Errorf("SubjectToken(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestServerVersionCheck(t *testing.T) {
	for v, ok := range map[string]bool{"2.9.25": false, "2.10.0": true, "2.12.3": true, "3.0.0": true, "1.4.1": false, "": false} {
		if err := stream.CheckVersion(v); (err == nil) != ok {
			t.Errorf("CheckVersion(%q) = %v", v, err)
		}
	}
}
