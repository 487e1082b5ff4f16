package main

import (
	"context"
	"flag"
	"fmt"
	"github.com/pemba-authz/pemba/cmd/pemba/internal/cli"
	"github.com/pemba-authz/pemba/engine"
	"io"
	"os"
)

// datastoreCommand is `pemba datastore migrate`: it creates or upgrades
// the tables of a PostgreSQL datastore (Pebble needs no migration).
func datastoreCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const usage = "usage: pemba datastore migrate --datastore-uri postgres://..."
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprintln(stdout, usage)
		return 0
	}
	if len(args) > 0 && args[0] == cli.ListSubcommands {
		fmt.Fprintln(stdout, "migrate") // the one subcommand, checked below
		return 0
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
