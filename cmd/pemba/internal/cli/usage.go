package cli

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// hiddenUsage marks a flag that usage output leaves out: an old spelling
// kept working (Alias) or a flag on its way out (Hide).
const hiddenUsage = "\x00hidden"

// Alias makes old a hidden second name of the flag name: both set the same
// value, and usage output lists only name. It keeps an old spelling
// working after the vocabulary settled on another (-store is -datastore).
func Alias(fs *flag.FlagSet, old, name string) {
	f := fs.Lookup(name)
	if f == nil {
		panic("cli.Alias: no flag " + name) // a programming error
	}
	fs.Var(f.Value, old, hiddenUsage)
}

// Hide leaves the flag name out of usage output; it keeps working.
func Hide(fs *flag.FlagSet, name string) {
	if f := fs.Lookup(name); f != nil {
		f.Usage = hiddenUsage
	}
}

// Hidden reports whether f is an alias or a hidden flag.
func Hidden(f *flag.Flag) bool { return f.Usage == hiddenUsage }

// PrintUsage writes the usage format every pemba command shares: the usage
// line, then the flags that are not hidden, as flag.PrintDefaults lays
// them out.
func PrintUsage(w io.Writer, usage string, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: %s\n", usage)
	any := false
	fs.VisitAll(func(f *flag.Flag) { any = any || !Hidden(f) })
	if !any {
		return
	}
	fmt.Fprint(w, "\nflags:\n")
	fs.VisitAll(func(f *flag.Flag) {
		if Hidden(f) {
			return
		}
		var b strings.Builder
		b.WriteString("  -" + f.Name)
		name, text := flag.UnquoteUsage(f)
		if name != "" {
			b.WriteString(" " + name)
		}
		if b.Len() <= 4 { // a one-letter flag: its text on the same line
			b.WriteString("\t")
		} else {
			b.WriteString("\n    \t")
		}
		b.WriteString(strings.ReplaceAll(text, "\n", "\n    \t"))
		switch def := f.DefValue; {
		case def == "" || def == "0" || def == "false" || def == "0s" || def == "[]":
		case name == "string":
			fmt.Fprintf(&b, " (default %q)", def)
		default:
			fmt.Fprintf(&b, " (default %v)", def)
		}
		fmt.Fprintln(w, b.String())
	})
}
