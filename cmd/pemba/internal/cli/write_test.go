package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/api/server"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// fileWithBadLine returns a relationship file of n lines: two comment
// lines, then tuples; line bad (1-based) holds text instead.
func fileWithBadLine(n, bad int, text string) string {
	var b strings.Builder
	b.WriteString("// generated\n\n")
	for line := 3; line <= n; line++ {
		if line == bad {
			b.WriteString(text + "\n")
			continue
		}
		fmt.Fprintf(&b, "doc:d%05d#viewer@user:anne\n", line)
	}
	return b.String()
}

// countDocs returns how many relationships on doc are stored.
func countDocs(t *testing.T, addr string) int {
	t.Helper()
	out := must(t, addr, "relationship", "read", "--resource-type", "doc")
	if strings.TrimSpace(out) == "" {
		return 0
	}
	return len(lines(out))
}

// refuseSchemaReads is a server option under which ReadSchema fails, so
// the command line cannot check its input first and only the server's
// own validation (placed at the line by the command line) stands.
var refuseSchemaReads = grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if info.FullMethod == "/pemba.v1.SchemaService/ReadSchema" {
		return nil, status.Error(codes.PermissionDenied, "no schema reads in this test")
	}
	return h(ctx, req)
})

// A bad line anywhere in a file, even past the first 1000 updates, means
// nothing is written, and the error names FILE:LINE (not a position
// within a batch), whether the command line finds it first or the server.
func TestWriteFileIsAllOrNothing(t *testing.T) {
	servers := map[string]string{
		"checked first": limitsServer(t),
		"checked by server": func() string {
			addr := startServerConfig(t, server.Config{GRPCOptions: []grpc.ServerOption{refuseSchemaReads}})
			must(t, addr, "schema", "write", writeFile(t, "schema.zed", limitsSchema))
			return addr
		}(),
	}
	tests := []struct {
		name      string
		n, bad    int
		text      string
		op        string
		want      []string // substrings of the error
		onlyLocal bool     // the server cannot see this one
	}{
		{"unknown relation at 1500", 1500, 1500, "doc:x#nope@user:anne", "touch", []string{"F:1500: ", `no relation "nope"`}, false},
		{"permission at 1500", 1500, 1500, "doc:x#view@user:anne", "touch", []string{"F:1500: ", "is a permission"}, false},
		{"unknown relation at 1001", 1500, 1001, "doc:x#nope@user:anne", "touch", []string{"F:1001: "}, false},
		{"unknown relation at 700 of 1000", 1000, 700, "doc:x#nope@user:anne", "touch", []string{"F:700: "}, false},
		{"create, unknown relation at 900", 1000, 900, "doc:x#nope@user:anne", "create", []string{"F:900: "}, false},
		{"syntax error at 1500", 1500, 1500, "not a tuple", "touch", []string{"F:1500: "}, false},
		{"repeat of line 3 at 1500", 1500, 1500, "doc:d00003#viewer@user:anne", "touch", []string{"F:1500: ", "F:3"}, false},
	}
	for sname, addr := range servers {
		for _, tt := range tests {
			t.Run(sname+"/"+tt.name, func(t *testing.T) {
				f := writeFile(t, "F", fileWithBadLine(tt.n, tt.bad, tt.text))
				r := pemba(t, addr, "", "relationship", "write", "--op", tt.op, "--file", f)
				if r.code != 1 || r.stdout != "" {
					t.Fatalf("exit %d, stdout %q; want exit 1 and no zookie", r.code, r.stdout)
				}
				for _, w := range tt.want {
					if !strings.Contains(r.stderr, strings.ReplaceAll(w, "F:", f+":")) {
						t.Errorf("stderr %q does not contain %q", r.stderr, w)
					}
				}
				if strings.Count(r.stderr, "nothing was written") != 1 {
					t.Errorf("stderr %q does not say once that nothing was written", r.stderr)
				}
				if strings.Contains(r.stderr, "update ") || strings.Contains(r.stderr, "rpc error") {
					t.Errorf("stderr %q counts updates instead of naming the line", r.stderr)
				}
				if n := countDocs(t, addr); n != 0 {
					t.Errorf("%d relationships written, want none", n)
				}
			})
		}
	}
}

// A valid file larger than one write is written whole, with one zookie;
// creates and deletes too many for one write are refused before anything
// is written, with the limit named and the way out.
func TestWriteLargeFile(t *testing.T) {
	addr := limitsServer(t)
	f := writeFile(t, "big.txt", fileWithBadLine(1502, 0, ""))
	for _, op := range []string{"create", "delete"} {
		r := pemba(t, addr, "", "relationship", "write", "--op", op, "--file", f)
		if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "ResourceExhausted: 1500 updates") ||
			!strings.Contains(r.stderr, "limit of 1000") || !strings.Contains(r.stderr, "nothing was written") {
			t.Errorf("%s of 1500: %+v", op, r)
		}
	}
	if n := countDocs(t, addr); n != 0 {
		t.Fatalf("%d relationships written by refused writes", n)
	}
	r := pemba(t, addr, "", "relationship", "write", "--file", f)
	if r.code != 0 || len(lines(r.stdout)) != 1 || !strings.Contains(r.stderr, "1500 relationships written") {
		t.Fatalf("touch of 1500: %+v", r)
	}
	zk := strings.TrimSpace(r.stdout)
	if n := countDocs(t, addr); n != 1500 {
		t.Errorf("%d relationships stored, want 1500", n)
	}
	// The zookie printed is the revision of all of them.
	if out := must(t, addr, "relationship", "read", "--resource-type", "doc", "--consistency", "at_exact_snapshot", "--zookie", zk); len(lines(out)) != 1500 {
		t.Errorf("at the zookie: %d relationships", len(lines(out)))
	}
	// Creating them again fails on the first existing one, named by line,
	// and creates nothing.
	small := writeFile(t, "small.txt", "doc:new1#viewer@user:anne\ndoc:d00007#viewer@user:anne\ndoc:new2#viewer@user:anne\n")
	r = pemba(t, addr, "", "relationship", "write", "--op", "create", "--file", small)
	if r.code != 1 || !strings.Contains(r.stderr, "AlreadyExists: "+small+":2: ") || strings.Contains(r.stderr, "update 1") {
		t.Errorf("create of an existing relationship: %+v", r)
	}
	if n := countDocs(t, addr); n != 1500 {
		t.Errorf("%d relationships after a failed create, want 1500", n)
	}
}

// A server without ImportRelationships cannot take more touches than one
// write atomically: nothing is written, and the error says why.
func TestWriteLargeFileWithoutImport(t *testing.T) {
	fake := &noImport{}
	s := grpc.NewServer()
	pb.RegisterPermissionsServiceServer(s, fake)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(lis)
	defer s.Stop()
	r := pemba(t, lis.Addr().String(), fileWithBadLine(1502, 0, ""), "relationship", "write", "--file", "-")
	if r.code != 1 || !strings.Contains(r.stderr, "does not implement ImportRelationships") || !strings.Contains(r.stderr, "nothing was written") {
		t.Errorf("write: %+v", r)
	}
	if len(fake.writes) != 0 {
		t.Errorf("%d writes sent", len(fake.writes))
	}
}

// relationship import names FILE:LINE for bad lines, found first or by the
// server, and imports nothing then.
func TestImportNamesTheLine(t *testing.T) {
	for _, checked := range []bool{true, false} {
		cfg := server.Config{}
		if !checked {
			cfg.GRPCOptions = []grpc.ServerOption{refuseSchemaReads}
		}
		addr := startServerConfig(t, cfg)
		must(t, addr, "schema", "write", writeFile(t, "schema.zed", limitsSchema))
		for _, tt := range []struct{ bad int }{{3}, {1000}, {1500}, {2500}} {
			t.Run(fmt.Sprintf("checked %v, line %d", checked, tt.bad), func(t *testing.T) {
				f := writeFile(t, "F", fileWithBadLine(2600, tt.bad, "doc:x#nope@user:anne"))
				r := pemba(t, addr, "", "relationship", "import", f)
				if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, fmt.Sprintf("%s:%d: ", f, tt.bad)) {
					t.Errorf("import: %+v", r)
				}
				if n := countDocs(t, addr); n != 0 {
					t.Errorf("%d relationships imported, want none", n)
				}
			})
		}
	}
}

// locate places the server's errors, as its layers word them, at the
// origin of the relationship they are about.
func TestLocate(t *testing.T) {
	from := &origins{name: "F"}
	from.addArg()
	for _, line := range []int{3, 4, 5, 9, 10, 11, 12} {
		from.addLine(line)
	}
	// Positions: 0 argument 1; 1..3 F:3..5; 4..7 F:9..12.
	rel := tuple.Relationship{Resource: tuple.ObjectRef{Type: "doc", ID: "a"}, Relation: "viewer", Subject: tuple.SubjectRef{Type: "user", ID: "b"}}
	tests := []struct {
		name string
		loc  locator
		err  error
		want string // the message; "" when unchanged
	}{
		{"engine update index", locator{from: from},
			status.Error(codes.InvalidArgument, (&engine.RelationshipError{Index: 5, Relationship: rel, Reason: engine.ErrUnknownRelation}).Error()),
			"F:10: engine: relationship doc:a#viewer@user:b: unknown relation"},
		{"engine update index in a later batch", locator{from: from, base: 4},
			status.Error(codes.InvalidArgument, (&engine.RelationshipError{Index: 1, Relationship: rel, Reason: engine.ErrUnknownRelation}).Error()),
			"F:10: engine: relationship doc:a#viewer@user:b: unknown relation"},
		{"write field path", locator{from: from},
			status.Error(codes.InvalidArgument, (&server.FieldError{Field: "updates[0].relationship.resource", Err: errors.New("bad")}).Error()),
			"argument 1: relationship.resource: bad"},
		{"import field path", locator{from: from, msgStarts: []int{0, 4}},
			status.Error(codes.InvalidArgument, (&server.FieldError{Field: "messages[1].relationships[2].subject", Err: errors.New("bad")}).Error()),
			"F:11: subject: bad"},
		{"already exists", locator{from: from, keys: map[string]int{rel.Key().String(): 2}},
			status.Error(codes.AlreadyExists, (&store.AlreadyExistsError{Key: rel.Key()}).Error()),
			"F:4: store: relationship doc:a#viewer@user:b already exists"},
		{"engine write of one update", locator{from: from},
			status.Error(codes.AlreadyExists, fmt.Sprintf("engine: update %d (CREATE %s): %v", 3, rel.Key(), &store.AlreadyExistsError{Key: rel.Key()})),
			"F:5: engine: store: relationship doc:a#viewer@user:b already exists"},
		{"out of range", locator{from: from, base: 7},
			status.Error(codes.InvalidArgument, (&engine.RelationshipError{Index: 1, Relationship: rel, Reason: engine.ErrUnknownRelation}).Error()), ""},
		{"about no relationship", locator{from: from}, status.Error(codes.FailedPrecondition, "no schema"), ""},
		{"not a status", locator{from: from}, errors.New("update 1: x"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.loc.locate(tt.err)
			if tt.want == "" {
				if got != tt.err {
					t.Errorf("locate changed %v to %v", tt.err, got)
				}
				return
			}
			st := status.Convert(got)
			if st.Message() != tt.want || st.Code() != status.Code(tt.err) {
				t.Errorf("locate = %v %q, want %v %q", st.Code(), st.Message(), status.Code(tt.err), tt.want)
			}
		})
	}
}

// Against a server that takes fewer updates per write than the command
// line's batch, touches still go in whole (through the import), and
// creates are refused with the server's limit named.
func TestWriteAboveTheServersLimit(t *testing.T) {
	addr := startServerEngine(t, engine.Options{Limits: engine.Limits{MaxUpdatesPerWrite: 10}}, server.Config{})
	must(t, addr, "schema", "write", writeFile(t, "schema.zed", limitsSchema))
	f := writeFile(t, "F", fileWithBadLine(17, 0, ""))
	r := pemba(t, addr, "", "relationship", "write", "--op", "create", "--file", f)
	if r.code != 1 || !strings.Contains(r.stderr, "15 updates are more than one atomic write holds") ||
		!strings.Contains(r.stderr, "at most 10 updates") || !strings.Contains(r.stderr, "relationship import") {
		t.Errorf("create of 15: %+v", r)
	}
	if n := countDocs(t, addr); n != 0 {
		t.Fatalf("%d written by a refused create", n)
	}
	r = pemba(t, addr, "", "relationship", "write", "--file", f)
	if r.code != 0 || len(lines(r.stdout)) != 1 {
		t.Fatalf("touch of 15: %+v", r)
	}
	if n := countDocs(t, addr); n != 15 {
		t.Errorf("%d written, want 15", n)
	}
}
