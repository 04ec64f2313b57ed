// Package syncdtest gives tests the real parts syncd runs on: an isolated
// Postgres database per test (cloned from a migrated template), an embedded
// JetStream server, and a harness that runs the service package — the
// wiring `syncd serve` runs — over both.
package syncdtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncd/syncd/migrations"
	"github.com/syncd/syncd/redact"
)

// DefaultDatabaseURL is used when TEST_DATABASE_URL is unset: the local
// server `make test` also falls back to.
const DefaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// AdminURL is the server tests create their databases on.
func AdminURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultDatabaseURL
}

var dbCounter atomic.Int64

// DatabaseURL creates an empty, migrated database for the test and returns
// its URL. It is dropped when the test ends.
func DatabaseURL(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		t.Fatalf("connect to test Postgres %s: %v (set TEST_DATABASE_URL or run `make test`)", redact.URL(AdminURL()), err)
	}
	defer admin.Close(ctx)
	tmpl := templateName()
	// Creating from a template needs the template idle: one test at a
	// time, across packages, holds this lock while cloning.
	if _, err := admin.Exec(ctx, "SELECT pg_advisory_lock(727274)"); err != nil {
		t.Fatalf("lock: %v", err)
	}
	defer admin.Exec(context.Background(), "SELECT pg_advisory_unlock(727274)")
	if err := ensureTemplate(ctx, admin, tmpl); err != nil {
		t.Fatalf("template database: %v", err)
	}
	name := fmt.Sprintf("syncd_t_%d_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9, dbCounter.Add(1))
	if _, err := admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, tmpl)); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, AdminURL())
		if err != nil {
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name))
	})
	return withDatabase(AdminURL(), name)
}

// DB returns a pool on a fresh migrated database for the test.
func DB(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return newPool(t, 0)
}

// OneConn returns a pool of one connection on a fresh migrated database:
// the test's statements and pg_stat_force_next_flush run on one backend,
// so the table statistics it reads after are its own.
func OneConn(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return newPool(t, 1)
}

// newPool opens a pool on a fresh migrated database, of at most maxConns
// connections (0: pgxpool's default), closed when the test ends.
func newPool(t testing.TB, maxConns int32) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(DatabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func ensureTemplate(ctx context.Context, admin *pgx.Conn, tmpl string) error {
	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", tmpl).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	// Build under a scratch name and rename, so a run that dies half-way
	// never leaves a half-migrated template behind.
	scratch := tmpl + "_build"
	_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+scratch+" WITH (FORCE)")
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+scratch); err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, withDatabase(AdminURL(), scratch))
	if err != nil {
		return err
	}
	_, err = migrations.Up(ctx, pool)
	pool.Close()
	if err != nil {
		return err
	}
	if _, err = admin.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s RENAME TO %s", scratch, tmpl)); err != nil {
		return err
	}
	// Templates of older migrations are no use any more.
	rows, err := admin.Query(ctx, "SELECT datname FROM pg_database WHERE datname LIKE 'syncd\\_tmpl\\_%' AND datname <> $1 AND datname NOT LIKE '%\\_build'", tmpl)
	if err != nil {
		return nil
	}
	stale, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	for _, name := range stale {
		_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize())
	}
	return nil
}

// templateName changes whenever a migration changes.
func templateName() string {
	h := sha256.New()
	dir := filepath.Join(RootDir(), "migrations")
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".sql") {
			b, _ := os.ReadFile(p)
			h.Write([]byte(p))
			h.Write(b)
		}
		return nil
	})
	return "syncd_tmpl_" + hex.EncodeToString(h.Sum(nil))[:12]
}

func withDatabase(raw, name string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.Path = "/" + name
	return u.String()
}

// RootDir is the repository root.
func RootDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// Fixture reads testdata/fixtures/<path>.
func Fixture(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(RootDir(), "testdata", "fixtures", path))
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	return b
}
