package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/pemba-authz/pemba/engine"
)

// restoreCommand is `pemba restore --from DIR -data-dir NEW`: it restores
// a backup that `pemba backup` wrote into a new Pebble data directory,
// offline (no server runs on NEW). Everything is verified before the
// files are moved into place (engine.RestoreBackup).
func restoreCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const usage = "pemba restore --from DIR -data-dir NEW"
	fs := flag.NewFlagSet("pemba restore", flag.ContinueOnError)
	from := fs.String("from", "", "the backup `directory` (written by pemba backup)")
	dataDir := fs.String("data-dir", "", "the new Pebble data `directory` to restore into (absent or empty)")
	verify := fs.Bool("verify-only", false, "verify the backup (manifest, every file's size and SHA-256) and restore nothing")
	if code := parseFlags(fs, usage, args, stdout, stderr); code >= 0 {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "pemba restore: unexpected arguments %q\nusage: %s\n", fs.Args(), usage)
		return 2
	}
	if *from == "" || (*dataDir == "" && !*verify) {
		fmt.Fprintf(stderr, "pemba restore: give --from and -data-dir\nusage: %s\n", usage)
		return 2
	}
	if *verify {
		m, err := engine.VerifyBackup(*from)
		if err != nil {
			fmt.Fprintf(stderr, "pemba restore: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "pemba: backup %s verified: %s store %s at revision %d, %d files\n", *from, m.Kind, m.StoreID, m.Revision, len(m.Files))
		return 0
	}
	m, err := engine.RestoreBackup(ctx, *from, *dataDir)
	if err != nil {
		fmt.Fprintf(stderr, "pemba restore: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "pemba: restored %s store %s at revision %d into %s (serve it with pemba serve -data-dir %s)\nzookie: %s\n",
		m.Kind, m.StoreID, m.Revision, *dataDir, *dataDir, m.Zookie)
	return 0
}
