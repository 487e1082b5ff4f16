package pgstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// Expirations are stored as int8 nanoseconds since the Unix epoch, because
// timestamptz keeps only microseconds; these bounds keep UnixNano exact.
var (
	minExpiration = time.Unix(0, -1<<63+1).UTC()
	maxExpiration = time.Unix(0, 1<<63-1).UTC()
)

// row is a relationship in the form the columns take.
type row struct {
	caveatName pgtype.Text
	caveatCtx  pgtype.Text // JSON text, kept verbatim so numbers survive exactly
	expires    pgtype.Int8
}

// encodeRelationship validates r and returns its column values.
func encodeRelationship(r tuple.Relationship) (row, error) {
	var out row
	if err := r.Validate(); err != nil {
		return out, fmt.Errorf("pgstore: relationship %s: %w", r.Key(), err)
	}
	if r.Caveat != nil {
		out.caveatName = pgtype.Text{String: r.Caveat.Name, Valid: true}
		if r.Caveat.Context != nil {
			b, err := json.Marshal(r.Caveat.Context)
			if err != nil {
				return out, fmt.Errorf("pgstore: relationship %s: caveat context: %v: %w", r.Key(), err, tuple.ErrInvalid)
			}
			out.caveatCtx = pgtype.Text{String: string(b), Valid: true}
		}
	}
	if !r.Expiration.IsZero() {
		if r.Expiration.Before(minExpiration) || r.Expiration.After(maxExpiration) {
			return out, fmt.Errorf("pgstore: relationship %s: expiration %v outside %d..%d: %w",
				r.Key(), r.Expiration, minExpiration.Year(), maxExpiration.Year(), tuple.ErrInvalid)
		}
		out.expires = pgtype.Int8{Int64: r.Expiration.UnixNano(), Valid: true}
	}
	return out, nil
}

// decodeRelationship rebuilds a relationship from its columns.
func decodeRelationship(k tuple.Key, caveatName pgtype.Text, caveatCtx []byte, expires pgtype.Int8) (tuple.Relationship, error) {
	rel := tuple.Relationship{Resource: k.Resource, Relation: k.Relation, Subject: k.Subject}
	if caveatName.Valid {
		rel.Caveat = &tuple.Caveat{Name: caveatName.String}
		if caveatCtx != nil {
			dec := json.NewDecoder(bytes.NewReader(caveatCtx))
			dec.UseNumber()
			if err := dec.Decode(&rel.Caveat.Context); err != nil {
				return rel, fmt.Errorf("pgstore: caveat context of %s: %v: %w", k, err, store.ErrCorrupt)
			}
		}
	}
	if expires.Valid {
		rel.Expiration = time.Unix(0, expires.Int64).UTC()
	}
	return rel, nil
}
