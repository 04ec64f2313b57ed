package migrations_test

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncd/syncd/migrations"
	"github.com/syncd/syncd/syncdtest"
)

// TestKeepsAnExistingAuthUserID: where auth.user_id() exists already
// (Neon's pg_session_jwt), the migrations use it and never replace it.
func TestKeepsAnExistingAuthUserID(t *testing.T) {
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, syncdtest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	name := fmt.Sprintf("syncd_t_authfn_%d", time.Now().UnixNano())
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
	u, _ := url.Parse(syncdtest.AdminURL())
	u.Path = "/" + name
	pool, err := pgxpool.New(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `CREATE SCHEMA auth;
		CREATE FUNCTION auth.user_id() RETURNS text LANGUAGE sql STABLE AS $$ SELECT 'from_the_provider' $$`); err != nil {
		t.Fatal(err)
	}
	if _, err := migrations.Up(ctx, pool); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := pool.QueryRow(ctx, `SELECT auth.user_id()`).Scan(&got); err != nil || got != "from_the_provider" {
		t.Fatalf("auth.user_id() = %q, %v: the provider's function was replaced", got, err)
	}
	// The policies call it.
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_policies WHERE qual LIKE '%auth.user_id()%'`).Scan(&n); err != nil || n < 6 {
		t.Fatalf("%d policies use auth.user_id() (%v)", n, err)
	}
}
