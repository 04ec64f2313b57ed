// Package queries is syncd's only way to talk SQL: the *.sql files here are
// compiled by sqlc into the *.gen.go methods, one file per table. Every
// method takes a DBTX, so it runs on the pool or inside a transaction.
package queries

import (
	"errors"

	"github.com/jackc/pgx/v5"
)

// ErrNotFound is returned by Check for a query that matched no row, so that
// callers above this package need not import pgx to tell.
var ErrNotFound = errors.New("no matching row")

// Check converts driver errors at the package boundary.
func Check(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	return err
}
