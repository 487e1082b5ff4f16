package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/pemba-authz/pemba/engine"
)

// version is the release version, stamped at build time with
// -ldflags "-X main.version=v1.2.3"; unstamped builds report the module
// version the Go toolchain recorded ("(devel)" for a source checkout).
var version = ""

// versionCommand is `pemba version` (also `pemba --version`): the version,
// the commit it was built from, the Go version and the storage formats
// this binary reads and writes.
func versionCommand(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		if isHelp(args[0]) {
			fmt.Fprintln(stdout, "usage: pemba version")
			return 0
		}
		fmt.Fprintf(stderr, "pemba version: unexpected arguments %q\nusage: pemba version\n", args)
		return 2
	}
	info, _ := debug.ReadBuildInfo()
	fmt.Fprint(stdout, versionText(version, info, engine.StorageFormats()))
	return 0
}

// versionText formats what versionCommand prints; info may be nil.
func versionText(stamped string, info *debug.BuildInfo, formats map[string]int) string {
	v, commit, goVersion := buildVersion(stamped, info)
	var fs []string
	for _, name := range slices.Sorted(maps.Keys(formats)) {
		fs = append(fs, fmt.Sprintf("%s %d", name, formats[name]))
	}
	return fmt.Sprintf("pemba %s\ncommit: %s\ngo: %s\nstorage formats: %s\n", v, commit, goVersion, strings.Join(fs, ", "))
}

// buildVersion returns the version (stamped, else the module's), the
// commit (with its time, and ", modified" for a dirty tree) and the Go
// version of this binary; info may be nil.
func buildVersion(stamped string, info *debug.BuildInfo) (v, commit, goVersion string) {
	v, commit, goVersion = stamped, "unknown", "unknown"
	if info != nil {
		goVersion = info.GoVersion
		if v == "" {
			v = info.Main.Version
		}
		settings := map[string]string{}
		for _, s := range info.Settings {
			settings[s.Key] = s.Value
		}
		if rev := settings["vcs.revision"]; rev != "" {
			commit = rev
			if t := settings["vcs.time"]; t != "" {
				commit += " (" + t + ")"
			}
			if settings["vcs.modified"] == "true" {
				commit += ", modified"
			}
		}
	}
	if v == "" {
		v = "unknown"
	}
	return v, commit, goVersion
}
