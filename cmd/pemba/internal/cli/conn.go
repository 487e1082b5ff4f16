package cli

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"net"
	"os"

	"github.com/pemba-authz/pemba/api/client"
	pb "github.com/pemba-authz/pemba/api/pembav1"
)

// DefaultAddress is the server address used without --address and
// PEMBA_ADDRESS: where `pemba serve` listens by default.
const DefaultAddress = "127.0.0.1:50051"

// connFlags are the flags of every command that talks to a server.
type connFlags struct {
	address  string
	token    string
	insecure bool
	useTLS   bool
	tlsCA    string
}

// connFlags registers --address, --token, --insecure, --tls and --tls-ca.
// The token's default is read from the environment after parsing, so
// that -h never prints it.
func (inv *invocation) connFlags(fs *flag.FlagSet) *connFlags {
	c := &connFlags{}
	addr := inv.env.Getenv("PEMBA_ADDRESS")
	if addr == "" {
		addr = DefaultAddress
	}
	fs.StringVar(&c.address, "address", addr, "server address, host:port (env PEMBA_ADDRESS)")
	fs.StringVar(&c.token, "token", "", "preshared key (env PEMBA_TOKEN)")
	fs.BoolVar(&c.insecure, "insecure", false, "plaintext, no TLS (the default for loopback addresses)")
	fs.BoolVar(&c.useTLS, "tls", false, "TLS verified with the system's roots (the default for other addresses)")
	fs.StringVar(&c.tlsCA, "tls-ca", "", "TLS verified with the CA certificates in this PEM `file`")
	for _, g := range inv.env.Global {
		// Values ParseGlobal accepted with these same definitions; the
		// command's own flags, parsed later, override them.
		_ = fs.Set(g.Name, g.Value)
	}
	return c
}

// dial connects as the flags say. Plaintext is the default only for a
// loopback address, where nothing on the path can read the token.
func (inv *invocation) dial(c *connFlags, usage string) (*client.Client, error) {
	if c.insecure && (c.useTLS || c.tlsCA != "") {
		return nil, usagef(usage, "--insecure contradicts --tls and --tls-ca")
	}
	if c.token == "" {
		c.token = inv.env.Getenv("PEMBA_TOKEN")
	}
	warnings := &serverWarnings{inv: inv}
	opts := client.Options{Key: c.token, DialOptions: warnings.dialOptions()}
	if c.tlsCA != "" || c.useTLS || !(c.insecure || IsLoopback(c.address)) {
		cfg, err := ClientTLS("--tls-ca", c.tlsCA)
		if err != nil {
			return nil, err
		}
		opts.TLS = cfg
	} else {
		opts.Insecure = true
	}
	cl, err := client.New(c.address, opts)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", c.address, err)
	}
	return cl, nil
}

// ClientTLS is the TLS configuration of a connection to a server: its
// certificate verified with the CA certificates in the PEM file caFile,
// or with the system's roots when caFile is empty. flag names caFile's
// flag in errors.
func ClientTLS(flag, caFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", flag, err)
	}
	cfg.RootCAs = x509.NewCertPool()
	if !cfg.RootCAs.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s %s: no PEM certificates", flag, caFile)
	}
	return cfg, nil
}

// IsLoopback reports whether addr is host:port with a loopback host.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// readFlags are the consistency flags of every read.
type readFlags struct {
	mode   string
	zookie string
}

func consistencyFlags(fs *flag.FlagSet) *readFlags {
	r := &readFlags{}
	fs.StringVar(&r.mode, "consistency", "", "minimize_latency, at_least_as_fresh, at_exact_snapshot or fully_consistent\n(default: at_least_as_fresh with --zookie, else fully_consistent)")
	fs.StringVar(&r.zookie, "zookie", "", "zookie for at_least_as_fresh or at_exact_snapshot")
	return r
}

// consistency converts the flags. The default is fully_consistent: a
// person at a terminal expects to see the write they just made, and the
// cost of one head read is nothing at that pace.
func (r *readFlags) consistency(usage string) (*pb.Consistency, error) {
	mode := r.mode
	if mode == "" {
		mode = "fully_consistent"
		if r.zookie != "" {
			mode = "at_least_as_fresh"
		}
	}
	z := &pb.Zookie{Token: r.zookie}
	switch mode {
	case "minimize_latency", "fully_consistent":
		if r.zookie != "" {
			return nil, usagef(usage, "--zookie goes with --consistency at_least_as_fresh or at_exact_snapshot, not %s", mode)
		}
		if mode == "minimize_latency" {
			return client.MinimizeLatency(), nil
		}
		return client.FullyConsistent(), nil
	case "at_least_as_fresh", "at_exact_snapshot":
		if r.zookie == "" {
			return nil, usagef(usage, "--consistency %s needs --zookie", mode)
		}
		if mode == "at_least_as_fresh" {
			return client.AtLeastAsFresh(z), nil
		}
		return client.AtExactSnapshot(z), nil
	}
	return nil, usagef(usage, "unknown --consistency %q (want minimize_latency, at_least_as_fresh, at_exact_snapshot or fully_consistent)", r.mode)
}
