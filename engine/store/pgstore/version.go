package pgstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// CurrentVersion returns the schema version of the database at uri: 0
// when Migrate never ran there. It changes nothing.
func CurrentVersion(ctx context.Context, uri string) (int, error) {
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		return 0, fmt.Errorf("pgstore: connect: %w", err)
	}
	defer conn.Close(context.Background())
	version, err := readVersion(ctx, conn)
	if err != nil {
		return 0, fmt.Errorf("pgstore: %w", err)
	}
	return version, nil
}
