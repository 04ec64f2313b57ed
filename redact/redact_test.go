package redact_test

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncd/syncd/redact"
)

// Passwords with every character that cuts a connection string in the
// wrong place; none may survive in whole or in part.
var passwords = []string{"S3@CRET", "a:b:c", "p/ss/wd", "1234/x@y", "s3#cr?et", "zq9 qw8@x", "plain", "%40pct", "we@ird:/all#?"}

func TestURLHidesAnyPassword(t *testing.T) {
	for _, pw := range passwords {
		for _, tmpl := range []string{"postgres://alice:%s@db.internal:5432/app?sslmode=disable", "nats://alice:%s@nats:4222"} {
			in := strings.Replace(tmpl, "%s", pw, 1)
			got := redact.URL(in)
			if leaks(got, pw) {
				t.Errorf("URL(%q) = %q: leaks the password", in, got)
			}
			if !strings.Contains(got, "db.internal") && !strings.Contains(got, "nats:4222") {
				t.Errorf("URL(%q) = %q: lost the host", in, got)
			}
		}
	}
	for in, want := range map[string]string{
		"postgres://alice:pw@db/app":           "postgres://alice:…@db/app",
		"postgres://db/app":                    "postgres://db/app",
		"postgres://u:S3@CRET@host/x":          "postgres://…@host/x",
		"host=db user=u password='a b\\' c' x": "host=db user=u password=… x",
		"host=db password=hunter2 dbname=app":  "host=db password=… dbname=app",
		"postgres://db/app?password=hunter2&x": "postgres://db/app?password=…&x",
	} {
		if got := redact.URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
}

// The parse error of pgx itself quotes the string, cut at the first '@':
// the message as the commands print it holds no part of the password.
func TestTextHidesPasswordInDriverErrors(t *testing.T) {
	for _, pw := range passwords {
		dsn := "postgres://u:" + pw + "@host/x"
		_, err := pgxpool.ParseConfig(dsn)
		if err == nil {
			err = errors.New("connect " + dsn + ": refused")
		}
		got := redact.Error(err, dsn)
		if leaks(got, pw) {
			t.Errorf("password %q: %q leaks it", pw, got)
		}
	}
	if got := redact.Text("dial nats://tok@h:4222: refused; retry nats://u:p@h2"); strings.Contains(got, "tok") || strings.Contains(got, "u:p") {
		t.Errorf("Text: %q", got)
	}
}

// leaks reports whether s holds the password or a piece of it that a
// wrong cut would leave (split at '@', ':', '/', '#', '?').
func leaks(s, pw string) bool {
	if strings.Contains(s, pw) {
		return true
	}
	for _, part := range strings.FieldsFunc(pw, func(r rune) bool { return strings.ContainsRune("@:/#? %", r) }) {
		if len(part) >= 3 && strings.Contains(s, part) && !strings.Contains("postgres nats host alice db.internal app sslmode disable", part) {
			return true
		}
	}
	return false
}

func TestLogHandlerRedactsEveryLine(t *testing.T) {
	var b strings.Builder
	dsn := "postgres://u:S3@CRET@host/x"
	log := slog.New(redact.Handler(slog.NewTextHandler(&b, nil), dsn)).With("url", dsn)
	log.Info("open "+dsn, "err", errors.New("cannot parse `postgres://u:xxxxx@CRET@host/x`"), slog.Group("g", "dsn", dsn))
	if out := b.String(); leaks(out, "S3@CRET") || !strings.Contains(out, "host/x") {
		t.Fatalf("log line leaks the password: %s", out)
	}
}
