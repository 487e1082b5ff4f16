package pgtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// BinEnv names the directory of the PostgreSQL server programs (initdb,
// pg_ctl, pg_basebackup) for tests that start clusters of their own.
// Default DefaultBin.
const BinEnv = "PEMBA_TEST_POSTGRES_BIN"

// DefaultBin is where Debian's postgresql-15 installs the server
// programs, as scripts/postgres-env.sh (and so .ci/run) does.
const DefaultBin = "/usr/lib/postgresql/15/bin"

// Binaries returns the directory of the PostgreSQL server programs, for
// tests that start their own clusters. Such tests run where the other
// PostgreSQL tests run: under CI=true (where a missing program fails the
// test) and wherever PEMBA_TEST_POSTGRES_URI is set, as
// scripts/with-postgres.sh sets it; elsewhere, or without the programs,
// they are skipped.
func Binaries(t testing.TB) string {
	t.Helper()
	bin := os.Getenv(BinEnv)
	if bin == "" {
		bin = DefaultBin
	}
	ci := os.Getenv("CI") == "true"
	if !ci && os.Getenv(ServerEnv) == "" {
		t.Skip(ServerEnv + " is not set: run the PostgreSQL tests with scripts/with-postgres.sh go test ./...")
	}
	for _, prog := range []string{"initdb", "pg_ctl", "pg_basebackup"} {
		if _, err := os.Stat(filepath.Join(bin, prog)); err != nil {
			how := fmt.Sprintf("%s: PostgreSQL 15's server programs are missing (%v): install Debian's postgresql-15 as .ci/run does, or set %s to their directory", prog, err, BinEnv)
			if ci {
				t.Fatal(how)
			}
			t.Skip(how)
		}
	}
	return bin
}

// Cluster is a PostgreSQL cluster that a test started, listening only on
// a Unix socket in its root directory (Root/.s.PGSQL.<Port>).
type Cluster struct {
	Name string // the data directory's name under Root
	Root string // the directory of the data directories and sockets
	Port int
	bin  string
}

// ClusterRoot makes a directory for a test's clusters (owned by the
// postgres user when the test runs as root, since the server refuses to
// run as root) and removes it when the test ends, after the clusters
// started in it have stopped.
func ClusterRoot(t testing.TB) string {
	t.Helper()
	root, err := os.MkdirTemp("", "pemba-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if os.Getuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root needs a postgres user to run the server as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(root, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// run runs a server program as the server's user, in root.
func run(root, bin, prog string, args ...string) error {
	argv := append([]string{filepath.Join(bin, prog)}, args...)
	if os.Getuid() == 0 {
		argv = append([]string{"runuser", "-u", "postgres", "--"}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = root // the server's user may not be allowed into the test's directory
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, out)
	}
	return nil
}

// clusterConf is the configuration of every cluster: Unix socket only,
// streaming replication on, and durability settings off (a stop with
// -m immediate loses nothing the kernel has, and the tests kill servers,
// not machines).
const clusterConf = `
listen_addresses = ''
max_connections = 100
wal_level = replica
wal_retrieve_retry_interval = 100ms
max_wal_senders = 8
hot_standby = on
fsync = off
full_page_writes = off
`

// InitCluster creates a cluster named name in root (initdb), to listen
// on port, and starts it. It stops when the test ends.
func InitCluster(t testing.TB, bin, root, name string, port int) *Cluster {
	t.Helper()
	c := &Cluster{Name: name, Root: root, Port: port, bin: bin}
	if err := run(root, bin, "initdb", "-D", c.dir(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8"); err != nil {
		t.Fatal(err)
	}
	c.appendConf(t, clusterConf)
	c.Start(t)
	t.Cleanup(func() { _ = c.Stop("immediate") })
	return c
}

// StandbyOf makes the cluster named name a streaming standby of primary
// (pg_basebackup -R, replacing any data directory of that name) listening
// on port, and starts it. It stops when the test ends.
func StandbyOf(t testing.TB, primary *Cluster, name string, port int) *Cluster {
	t.Helper()
	c := &Cluster{Name: name, Root: primary.Root, Port: port, bin: primary.bin}
	c.Rebuild(t, primary)
	t.Cleanup(func() { _ = c.Stop("immediate") })
	return c
}

// Rebuild replaces c's data directory with a fresh copy of primary's and
// starts c as its streaming standby. c must be stopped.
func (c *Cluster) Rebuild(t testing.TB, primary *Cluster) {
	t.Helper()
	if err := os.RemoveAll(c.dir()); err != nil {
		t.Fatal(err)
	}
	if err := run(c.Root, c.bin, "pg_basebackup", "-h", c.Root, "-p", strconv.Itoa(primary.Port), "-U", "postgres",
		"-D", c.dir(), "-R", "-X", "stream", "-c", "fast"); err != nil {
		t.Fatal(err)
	}
	c.Start(t)
}

func (c *Cluster) dir() string { return filepath.Join(c.Root, c.Name) }

func (c *Cluster) appendConf(t testing.TB, text string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(c.dir(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

// Start starts the cluster and waits until it accepts connections.
func (c *Cluster) Start(t testing.TB) {
	t.Helper()
	if err := run(c.Root, c.bin, "pg_ctl", "-D", c.dir(), "-l", c.dir()+".log", "-w", "-t", "60",
		"-o", fmt.Sprintf("-p %d -k %s", c.Port, c.Root), "start"); err != nil {
		log, _ := os.ReadFile(c.dir() + ".log")
		t.Fatalf("%v\n%s", err, log)
	}
}

// Stop stops the cluster with pg_ctl's mode: "immediate" is a crash (no
// checkpoint, every connection cut), "fast" a clean shutdown.
func (c *Cluster) Stop(mode string) error {
	if _, err := os.Stat(filepath.Join(c.dir(), "postmaster.pid")); err != nil {
		return nil // not running
	}
	return run(c.Root, c.bin, "pg_ctl", "-D", c.dir(), "-m", mode, "-w", "-t", "60", "stop")
}

// Promote ends a standby's recovery and waits until it accepts writes.
func (c *Cluster) Promote(t testing.TB) {
	t.Helper()
	if err := run(c.Root, c.bin, "pg_ctl", "-D", c.dir(), "-w", "-t", "60", "promote"); err != nil {
		t.Fatal(err)
	}
}

// URI returns the superuser URI of database db on the cluster.
func (c *Cluster) URI(db string) string {
	return fmt.Sprintf("postgres://postgres@/%s?host=%s&port=%d&sslmode=disable", db, c.Root, c.Port)
}

// MultiHostURI returns the URI of database db on the first of clusters
// that accepts writes (target_session_attrs=read-write): the URI a
// client gives to follow a failover among them.
func MultiHostURI(db string, clusters ...*Cluster) string {
	var hosts, ports []string
	for _, c := range clusters {
		hosts = append(hosts, c.Root)
		ports = append(ports, strconv.Itoa(c.Port))
	}
	return fmt.Sprintf("postgres://postgres@/%s?host=%s&port=%s&sslmode=disable&target_session_attrs=read-write",
		db, strings.Join(hosts, ","), strings.Join(ports, ","))
}

// SetSynchronous sets synchronous_standby_names to '*' (every commit
// waits until a standby has flushed it) or ” (commits wait for no
// standby) with ALTER SYSTEM, and reloads the configuration. Commits
// already waiting for a standby are released when it is turned off.
func (c *Cluster) SetSynchronous(t testing.TB, on bool) {
	t.Helper()
	names := ""
	if on {
		names = "*"
	}
	Exec(t, c.URI("postgres"), "ALTER SYSTEM SET synchronous_standby_names = '"+names+"'")
	Exec(t, c.URI("postgres"), "SELECT pg_reload_conf()")
}

// WaitSynchronous waits until a standby replicates synchronously from c
// (pg_stat_replication.sync_state = 'sync'), or fails the test after a
// minute.
func (c *Cluster) WaitSynchronous(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URI("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'`).Scan(&n); err != nil {
			t.Fatalf("wait for a synchronous standby: %v", err)
		}
		if n > 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no synchronous standby on %s after a minute", c.Name)
		case <-tick.C:
		}
	}
}
