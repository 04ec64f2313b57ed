package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgCluster is a throwaway Postgres cluster the harness owns, so that a
// scenario can stop and start it. It is made the way scripts/postgres.sh
// makes its throwaway cluster: initdb/pg_ctl from PATH or
// /usr/lib/postgresql/*/bin, trust auth on loopback, and as root the server
// runs as the postgres user (initdb refuses root).
type pgCluster struct {
	initdb, pgCtl string
	dir           string
	port          int
	asPostgres    bool
}

func findPGBins() (initdb, pgCtl string, err error) {
	i, err1 := exec.LookPath("initdb")
	c, err2 := exec.LookPath("pg_ctl")
	if err1 == nil && err2 == nil {
		return i, c, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(a, b int) bool { return pgMajor(dirs[a]) < pgMajor(dirs[b]) })
	for k := len(dirs) - 1; k >= 0; k-- {
		i, c := filepath.Join(dirs[k], "initdb"), filepath.Join(dirs[k], "pg_ctl")
		if isExec(i) && isExec(c) {
			return i, c, nil
		}
	}
	return "", "", fmt.Errorf("initdb/pg_ctl not found on PATH or in /usr/lib/postgresql/*/bin (run `make test` once: scripts/postgres.sh installs PostgreSQL when it can)")
}

func pgMajor(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode()&0o111 != 0
}

func newPGCluster(work string) (*pgCluster, error) {
	initdb, pgCtl, err := findPGBins()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	c := &pgCluster{initdb: initdb, pgCtl: pgCtl, dir: filepath.Join(work, "pg"), port: port, asPostgres: os.Geteuid() == 0}
	if err := os.MkdirAll(filepath.Join(c.dir, "data"), 0o700); err != nil {
		return nil, err
	}
	if c.asPostgres {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, the Postgres server must run as user postgres, which does not exist (scripts/postgres.sh creates it): %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		// The postgres user must reach the cluster: every parent up to the
		// work dir is searchable (the work dir is made 0755).
		err = filepath.Walk(c.dir, func(p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, uid, gid)
		})
		if err != nil {
			return nil, err
		}
	}
	out, err := c.run(c.initdb, "-D", filepath.Join(c.dir, "data"), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C")
	if err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	return c, c.start()
}

// run runs a server binary, as the postgres user when the harness is root.
// It runs from / so pg_ctl never trips over an unreadable working dir.
func (c *pgCluster) run(bin string, args ...string) ([]byte, error) {
	var cmd *exec.Cmd
	if c.asPostgres {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", bin}, args...)...)
	} else {
		cmd = exec.Command(bin, args...)
	}
	cmd.Dir = "/"
	return cmd.CombinedOutput()
}

func (c *pgCluster) start() error {
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -c unix_socket_directories='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", c.port)
	out, err := c.run(c.pgCtl, "start", "-D", filepath.Join(c.dir, "data"), "-l", filepath.Join(c.dir, "server.log"), "-w", "-t", "60", "-s", "-o", opts)
	if err != nil {
		return fmt.Errorf("pg_ctl start: %v\n%s", err, out)
	}
	return nil
}

// stop stops the server: fast mode, as an orderly shutdown or failover
// does (connections are cut, nothing is lost).
func (c *pgCluster) stop() error {
	out, err := c.run(c.pgCtl, "stop", "-D", filepath.Join(c.dir, "data"), "-m", "fast", "-w", "-t", "60", "-s")
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %v\n%s", err, out)
	}
	return nil
}

// destroy stops the server at once; the files go with the work dir.
func (c *pgCluster) destroy() {
	_, _ = c.run(c.pgCtl, "stop", "-D", filepath.Join(c.dir, "data"), "-m", "immediate", "-s")
}

func (c *pgCluster) adminURL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// createDatabase makes a database for one scenario on the server at
// adminURL and returns its URL.
func createDatabase(ctx context.Context, adminURL, name string) (string, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", fmt.Errorf("connect to Postgres: %w", err)
	}
	defer conn.Close(ctx)
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		return "", err
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", fmt.Errorf("parse TEST_DATABASE_URL: %w", err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

// dropDatabase removes a scenario's database; errors are not worth failing
// a run for.
func dropDatabase(adminURL, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
}
