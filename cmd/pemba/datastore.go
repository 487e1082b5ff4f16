package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/pemba-authz/pemba/cmd/pemba/internal/cli"
	"github.com/pemba-authz/pemba/engine"
	"io"
	"os"
)

// datastoreCommand is `pemba datastore migrate`: it creates or upgrades
// the tables of a PostgreSQL datastore (Pebble needs no migration); and
// `pemba datastore rebuild-index|verify-index`, which rebuild and verify
// the nested-group index of a datastore no server has open.
func datastoreCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const usage = "usage: pemba datastore migrate --datastore-uri postgres://...\n" +
		"       pemba datastore rebuild-index|verify-index [-datastore pebble|postgres] [-data-dir DIR] [-datastore-uri URI]"
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprintln(stdout, usage)
		return 0
	}
	if len(args) > 0 && args[0] == cli.ListSubcommands {
		fmt.Fprintln(stdout, "migrate\nrebuild-index\nverify-index") // the subcommands, checked below
		return 0
	}
	if len(args) > 0 && (args[0] == "rebuild-index" || args[0] == "verify-index") {
		return indexCommand(ctx, args[0], args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "migrate" {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	fs := flag.NewFlagSet("pemba datastore migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	uri := fs.String("datastore-uri", os.Getenv("PEMBA_DATASTORE_URI"), "PostgreSQL connection `URI` (env PEMBA_DATASTORE_URI)")
	if code := parseFlags(fs, "pemba datastore migrate --datastore-uri URI", args[1:], stdout, stderr); code >= 0 {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "pemba datastore migrate: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *uri == "" {
		fmt.Fprintln(stderr, "pemba datastore migrate: give --datastore-uri (or PEMBA_DATASTORE_URI)")
		return 2
	}
	o := engine.StoreOptions{Kind: engine.StorePostgres, URI: *uri}
	before, err := engine.StoreVersion(ctx, o)
	if err != nil {
		fmt.Fprintf(stderr, "pemba datastore migrate: %v\n", err)
		return 1
	}
	version, err := engine.MigrateStore(ctx, o)
	if err != nil {
		fmt.Fprintf(stderr, "pemba datastore migrate: %v\n", err)
		return 1
	}
	switch {
	case before == version:
		fmt.Fprintf(stdout, "pemba: datastore already at schema version %d; nothing to do\n", version)
	case before == 0:
		fmt.Fprintf(stdout, "pemba: datastore created at schema version %d\n", version)
	default:
		fmt.Fprintf(stdout, "pemba: datastore migrated from schema version %d to %d\n", before, version)
	}
	return 0
}

// indexCommand is `pemba datastore rebuild-index|verify-index`: verify
// compares the stored nested-group index with the one computed from
// scratch from the relationships (exit 1 when they differ or the index is
// stale); rebuild writes the difference and marks it complete.
func indexCommand(ctx context.Context, sub string, args []string, stdout, stderr io.Writer) int {
	name := "pemba datastore " + sub
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	kind := fs.String("datastore", "pebble", "datastore: pebble (in -data-dir) or postgres (at -datastore-uri)")
	dir := fs.String("data-dir", "./data", "pebble data directory (no server may have it open)")
	uri := fs.String("datastore-uri", os.Getenv("PEMBA_DATASTORE_URI"), "PostgreSQL connection `URI` (env PEMBA_DATASTORE_URI)")
	if code := parseFlags(fs, name+" [-datastore pebble|postgres] [-data-dir DIR] [-datastore-uri URI]", args, stdout, stderr); code >= 0 {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected arguments %q\n", name, fs.Args())
		return 2
	}
	if *kind == engine.StorePebble {
		// Opening creates a store where there is none: refuse instead.
		if entries, err := os.ReadDir(*dir); err != nil || len(entries) == 0 {
			fmt.Fprintf(stderr, "%s: no Pebble datastore in %s\n", name, *dir)
			return 1
		}
	}
	st, err := engine.OpenStore(ctx, engine.StoreOptions{Kind: *kind, Dir: *dir, URI: *uri})
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		if errors.Is(err, engine.ErrStoreUsage) {
			return 2
		}
		return 1
	}
	defer st.Close()
	// Verifying writes nothing: the engine opens with the index off, so it
	// does not rebuild a stale index on opening.
	eng, err := engine.Open(ctx, st, engine.Options{NoNestedIndex: sub == "verify-index"})
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	defer eng.Close()
	if sub == "rebuild-index" {
		if _, err := eng.RebuildNestedIndex(ctx); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			return 1
		}
	}
	rev, reps, err := eng.VerifyNestedIndex(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	if len(reps) == 0 {
		fmt.Fprintf(stdout, "pemba: the schema at revision %d has no relation the nested-group index covers\n", rev)
		return 0
	}
	code := 0
	for _, r := range reps {
		state := "complete"
		if !r.Ready {
			state = "stale"
			code = 1
		}
		if r.Missing+r.Extra+r.Wrong > 0 {
			code = 1
		}
		fmt.Fprintf(stdout, "%s at revision %d: %s, %d rows; %d missing, %d extra, %d with a wrong distance\n",
			r.Relation, rev, state, r.Rows, r.Missing, r.Extra, r.Wrong)
	}
	return code
}
