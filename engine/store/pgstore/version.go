package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// CurrentVersion returns the schema version of the database at uri: 0
// when Migrate never ran there. It changes nothing.
func CurrentVersion(ctx context.Context, uri string) (int, error) {
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		return 0, fmt.Errorf("pgstore: connect: %w", err)
	}
	defer conn.Close(context.Background())
	version := 0
	err = conn.QueryRow(ctx, `SELECT version FROM pemba_schema_version`).Scan(&version)
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "42P01": // undefined_table: never migrated
		return 0, nil
	case errors.Is(err, pgx.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("pgstore: read schema version: %w", err)
	}
	return version, nil
}
