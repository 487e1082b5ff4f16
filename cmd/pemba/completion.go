package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/pemba-authz/pemba/cmd/pemba/internal/cli"
)

// completeCommand is the hidden name the completion scripts call:
// pemba __complete WORD... prints the candidates for the last WORD (the
// one being typed, maybe empty), one per line; nothing means "complete
// file names".
const completeCommand = "__complete"

// completionCommand is `pemba completion bash|zsh|fish`: it prints a
// script that completes pemba's commands, subcommands and flags by asking
// pemba itself (pemba __complete), so that it never goes stale.
func completionCommand(_ context.Context, args []string, stdout, stderr io.Writer) int {
	const usage = "usage: pemba completion bash|zsh|fish"
	if len(args) == 1 && isHelp(args[0]) {
		fmt.Fprintln(stdout, usage)
		fmt.Fprintln(stdout, "\nbash: source <(pemba completion bash)   (or save it in /etc/bash_completion.d/pemba)")
		fmt.Fprintln(stdout, "zsh:  pemba completion zsh > \"${fpath[1]}/_pemba\"")
		fmt.Fprintln(stdout, "fish: pemba completion fish > ~/.config/fish/completions/pemba.fish")
		return 0
	}
	if len(args) != 1 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	script, ok := completionScripts[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "pemba completion: unknown shell %q\n%s\n", args[0], usage)
		return 2
	}
	fmt.Fprint(stdout, script)
	return 0
}

var completionScripts = map[string]string{
	"bash": `# bash completion for pemba: source <(pemba completion bash)
_pemba() {
	local cur=${COMP_WORDS[COMP_CWORD]} IFS=$'\n'
	COMPREPLY=($(pemba __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
	if [ ${#COMPREPLY[@]} -eq 0 ]; then
		COMPREPLY=($(compgen -f -- "$cur"))
	fi
}
complete -o filenames -F _pemba pemba
`,
	"zsh": `#compdef pemba
# zsh completion for pemba: pemba completion zsh > "${fpath[1]}/_pemba"
_pemba() {
	local -a candidates
	candidates=("${(@f)$(pemba __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
	candidates=(${candidates:#})
	if (( ${#candidates} )); then
		compadd -a candidates
	else
		_files
	fi
}
compdef _pemba pemba
`,
	"fish": `# fish completion for pemba: pemba completion fish > ~/.config/fish/completions/pemba.fish
complete -c pemba -a '(pemba __complete (commandline -opc)[2..-1] (commandline -ct) 2>/dev/null)'
`,
}

// listSubcommands answers cli.ListSubcommands for a command of this
// package: the names of subs, one per line.
func listSubcommands[F any](w io.Writer, subs map[string]F) {
	for _, name := range slices.Sorted(maps.Keys(subs)) {
		fmt.Fprintln(w, name)
	}
}

// flagLine matches a flag in the usage format every command prints.
var flagLine = regexp.MustCompile(`(?m)^  -([a-z0-9][a-z0-9-]*)`)

// complete returns the candidates for the last of words (the arguments
// after "pemba", the last one being typed), found by asking the commands
// themselves: their names from the command table, their subcommands with
// cli.ListSubcommands, their flags from -h.
func complete(ctx context.Context, words []string) []string {
	if len(words) == 0 {
		words = []string{""}
	}
	cur, done := words[len(words)-1], words[:len(words)-1]
	ask := func(args ...string) string {
		var out bytes.Buffer
		if run(ctx, args, &out, io.Discard) != 0 {
			return ""
		}
		return out.String()
	}
	flagsOf := func(path ...string) []string {
		var names []string
		for _, m := range flagLine.FindAllStringSubmatch(ask(append(path, "-h")...), -1) {
			names = append(names, "--"+m[1])
		}
		return names
	}
	// Connection flags before the command: skip them and their values.
	for len(done) > 0 && strings.HasPrefix(done[0], "-") {
		if !strings.Contains(done[0], "=") && !slices.Contains([]string{"--insecure", "-insecure", "--tls", "-tls"}, done[0]) && len(done) > 1 {
			done = done[1:]
		}
		done = done[1:]
	}
	var candidates []string
	switch {
	case len(done) == 0 && strings.HasPrefix(cur, "-"):
		candidates = []string{"--address", "--token", "--insecure", "--tls", "--tls-ca", "--help", "--version"}
	case len(done) == 0:
		for _, c := range commands() {
			candidates = append(candidates, c.name)
		}
		candidates = append(candidates, "help")
	case done[0] == "help" || done[0] == "completion":
		if done[0] == "completion" {
			candidates = slices.Sorted(maps.Keys(completionScripts))
		} else if len(done) == 1 {
			return complete(ctx, []string{cur})
		}
	default:
		path := []string{done[0]}
		subs := strings.Fields(ask(done[0], cli.ListSubcommands))
		if len(subs) > 0 {
			if len(done) == 1 {
				if strings.HasPrefix(cur, "-") {
					return nil
				}
				candidates = subs
				break
			}
			path = append(path, done[1])
		}
		if strings.HasPrefix(cur, "-") {
			candidates = flagsOf(path...)
		}
	}
	var out []string
	for _, c := range candidates {
		if strings.HasPrefix(c, cur) || (strings.HasPrefix(cur, "-") && !strings.HasPrefix(cur, "--") && strings.HasPrefix(c, "-"+cur)) {
			out = append(out, c)
		}
	}
	return out
}
