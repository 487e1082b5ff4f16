package engine

import "github.com/pemba-authz/pemba/schema"

// SchemaChange is one difference between two schemas, as reported by
// WriteSchema.
//
// TODO: becomes an alias of schema.Change once schema.Diff lands.
type SchemaChange struct {
	Description string
}

// schemaDiff lists the differences between the schema in force and next.
func schemaDiff(prev, next *schema.Schema) []SchemaChange {
	return nil
}
