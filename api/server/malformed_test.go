package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/pemba-authz/pemba/api/pembav1"
)

// gen draws random, mostly malformed, request fields from a seeded
// source, so every run sends the same requests.
type gen struct {
	r     *rand.Rand
	valid *pb.Zookie // a real zookie, sometimes sent intact
}

// str returns an identifier-ish string: valid names, empty, oversized,
// control characters, unicode, separators of the tuple syntax.
func (g *gen) str() string {
	switch g.r.IntN(12) {
	case 0:
		return ""
	case 1:
		return strings.Repeat("a", 1+g.r.IntN(100_000))
	case 2:
		return "\x00\x01\t\n"
	case 3:
		return "doc:1#viewer@user:anne"
	case 4:
		return "üñïçødé"
	case 5:
		return "*"
	case 6:
		return "..."
	case 7:
		return strings.Repeat("#@:", g.r.IntN(50))
	default:
		return []string{"doc", "user", "group", "folder", "view", "viewer", "member", "anne", "readme", "leveled"}[g.r.IntN(10)]
	}
}

func (g *gen) obj() *pb.ObjectReference {
	if g.r.IntN(8) == 0 {
		return nil
	}
	return &pb.ObjectReference{ObjectType: g.str(), ObjectId: g.str()}
}

func (g *gen) sub() *pb.SubjectReference {
	if g.r.IntN(8) == 0 {
		return nil
	}
	return &pb.SubjectReference{Object: g.obj(), OptionalRelation: g.str()}
}

func (g *gen) zookie() *pb.Zookie {
	switch g.r.IntN(6) {
	case 0:
		return nil
	case 1:
		return g.valid
	case 2: // truncated
		return &pb.Zookie{Token: g.valid.GetToken()[:g.r.IntN(len(g.valid.GetToken()))]}
	case 3: // one character replaced (by ASCII: the client refuses invalid UTF-8)
		b := []byte(g.valid.GetToken())
		b[g.r.IntN(len(b))] = byte(' ' + g.r.IntN(95))
		return &pb.Zookie{Token: string(b)}
	default:
		return &pb.Zookie{Token: g.str()}
	}
}

func (g *gen) consistency() *pb.Consistency {
	switch g.r.IntN(6) {
	case 0:
		return nil
	case 1:
		return &pb.Consistency{}
	case 2:
		return &pb.Consistency{Requirement: &pb.Consistency_AtLeastAsFresh{AtLeastAsFresh: g.zookie()}}
	case 3:
		return &pb.Consistency{Requirement: &pb.Consistency_AtExactSnapshot{AtExactSnapshot: g.zookie()}}
	case 4:
		return &pb.Consistency{Requirement: &pb.Consistency_MinimizeLatency{MinimizeLatency: g.r.IntN(2) == 0}}
	default:
		return &pb.Consistency{Requirement: &pb.Consistency_FullyConsistent{FullyConsistent: g.r.IntN(2) == 0}}
	}
}

// value is a random JSON-like value, nested up to depth.
func (g *gen) value(depth int) *structpb.Value {
	k := g.r.IntN(7)
	if depth <= 0 {
		k %= 4
	}
	switch k {
	case 0:
		return structpb.NewNullValue()
	case 1:
		return structpb.NewNumberValue(g.r.NormFloat64() * 1e300)
	case 2:
		return structpb.NewStringValue(g.str())
	case 3:
		return structpb.NewBoolValue(g.r.IntN(2) == 0)
	case 4:
		var vs []*structpb.Value
		for range g.r.IntN(5) {
			vs = append(vs, g.value(depth-1))
		}
		return structpb.NewListValue(&structpb.ListValue{Values: vs})
	default:
		return structpb.NewStructValue(g.context(depth - 1))
	}
}

func (g *gen) context(depth int) *structpb.Struct {
	if g.r.IntN(3) == 0 {
		return nil
	}
	s := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	for range g.r.IntN(6) {
		s.Fields[g.str()] = g.value(depth)
	}
	return s
}

func (g *gen) filter() *pb.RelationshipFilter {
	if g.r.IntN(6) == 0 {
		return nil
	}
	f := &pb.RelationshipFilter{ResourceType: g.str(), OptionalResourceId: g.str(), OptionalRelation: g.str()}
	if g.r.IntN(2) == 0 {
		f.OptionalSubjectFilter = &pb.SubjectFilter{SubjectType: g.str(), OptionalSubjectId: g.str()}
	}
	return f
}

func (g *gen) cursor() *pb.Cursor {
	if g.r.IntN(2) == 0 {
		return nil
	}
	return &pb.Cursor{Token: g.str()}
}

// rel is a random relationship.
func (g *gen) rel() *pb.Relationship {
	r := &pb.Relationship{Resource: g.obj(), Relation: g.str(), Subject: g.sub()}
	if g.r.IntN(3) == 0 {
		r.OptionalCaveat = &pb.ContextualizedCaveat{CaveatName: g.str(), Context: g.context(3)}
	}
	if g.r.IntN(4) == 0 {
		r.OptionalExpiresAt = &timestamppb.Timestamp{Seconds: g.r.Int64() - g.r.Int64(), Nanos: g.r.Int32() - g.r.Int32()}
	}
	return r
}

// contextual returns the contextual relationships of a read: mostly none,
// else a few random ones (which the server must refuse or use, never
// store).
func (g *gen) contextual() []*pb.Relationship {
	if g.r.IntN(3) != 0 {
		return nil
	}
	var out []*pb.Relationship
	for range 1 + g.r.IntN(3) {
		out = append(out, g.rel())
	}
	return out
}

// poison is a relationship no schema accepts, so that every write that
// carries it must be rejected as a whole.
var poison = &pb.Relationship{
	Resource: &pb.ObjectReference{ObjectType: "no_such_type", ObjectId: "x"}, Relation: "r",
	Subject: &pb.SubjectReference{Object: &pb.ObjectReference{ObjectType: "user", ObjectId: "x"}},
}

// drain reads a server stream to its end and returns its error.
func drain[T any](recv func() (T, error), err error) error {
	if err != nil {
		return err
	}
	for {
		if _, err := recv(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// call sends one random request and returns what the server answered.
func (g *gen) call(ctx context.Context, f *fixture) (string, error) {
	switch g.r.IntN(12) {
	case 0:
		_, err := f.perms.CheckPermission(ctx, &pb.CheckPermissionRequest{Consistency: g.consistency(), Resource: g.obj(), Permission: g.str(), Subject: g.sub(), Context: g.context(4), ContextualRelationships: g.contextual()})
		return "CheckPermission", err
	case 10:
		req := &pb.CheckPermissionSetRequest{Consistency: g.consistency(), Subject: g.sub(), Context: g.context(2), IncludeRelations: g.r.IntN(2) == 0, ContextualRelationships: g.contextual(), Explain: g.r.IntN(3) == 0}
		n := g.r.IntN(4)
		if g.r.IntN(10) == 0 {
			n = 101 // over the engine's default limit
		}
		for range n {
			req.Resources = append(req.Resources, g.obj())
		}
		for range g.r.IntN(3) {
			req.OptionalPermissions = append(req.OptionalPermissions, g.str())
		}
		_, err := f.perms.CheckPermissionSet(ctx, req)
		return "CheckPermissionSet", err
	case 1:
		req := &pb.CheckBulkPermissionsRequest{Consistency: g.consistency()}
		n := g.r.IntN(20)
		if g.r.IntN(10) == 0 {
			n = 1_001 // one item over the engine's default limit
		}
		for range n {
			req.Items = append(req.Items, &pb.CheckBulkPermissionsRequestItem{Resource: g.obj(), Permission: g.str(), Subject: g.sub(), Context: g.context(2)})
		}
		_, err := f.perms.CheckBulkPermissions(ctx, req)
		return "CheckBulkPermissions", err
	case 2:
		_, err := f.perms.ExpandPermissionTree(ctx, &pb.ExpandPermissionTreeRequest{Consistency: g.consistency(), Resource: g.obj(), Permission: g.str(), OptionalDepth: g.r.Uint32(), Context: g.context(3), ContextualRelationships: g.contextual()})
		return "ExpandPermissionTree", err
	case 3:
		s, err := f.perms.LookupResources(ctx, &pb.LookupResourcesRequest{Consistency: g.consistency(), ResourceObjectType: g.str(), Permission: g.str(), Subject: g.sub(), Context: g.context(3), OptionalLimit: g.r.Uint32(), OptionalCursor: g.cursor(), ContextualRelationships: g.contextual()})
		return "LookupResources", drain(func() (*pb.LookupResourcesResponse, error) { return s.Recv() }, err)
	case 4:
		s, err := f.perms.LookupSubjects(ctx, &pb.LookupSubjectsRequest{Consistency: g.consistency(), Resource: g.obj(), Permission: g.str(), SubjectObjectType: g.str(), OptionalSubjectRelation: g.str(), Context: g.context(3), OptionalLimit: g.r.Uint32(), OptionalCursor: g.cursor(), ContextualRelationships: g.contextual()})
		return "LookupSubjects", drain(func() (*pb.LookupSubjectsResponse, error) { return s.Recv() }, err)
	case 5:
		s, err := f.perms.ReadRelationships(ctx, &pb.ReadRelationshipsRequest{Consistency: g.consistency(), RelationshipFilter: g.filter(), OptionalLimit: g.r.Uint32(), OptionalCursor: g.cursor()})
		return "ReadRelationships", drain(func() (*pb.ReadRelationshipsResponse, error) { return s.Recv() }, err)
	case 6:
		s, err := f.perms.ExportRelationships(ctx, &pb.ExportRelationshipsRequest{Consistency: g.consistency(), OptionalRelationshipFilter: g.filter(), OptionalBatchSize: g.r.Uint32(), OptionalCursor: g.cursor()})
		return "ExportRelationships", drain(func() (*pb.ExportRelationshipsResponse, error) { return s.Recv() }, err)
	case 7: // random updates, always with one that must fail
		req := &pb.WriteRelationshipsRequest{}
		for range g.r.IntN(5) {
			req.Updates = append(req.Updates, &pb.RelationshipUpdate{Operation: pb.RelationshipUpdate_Operation(g.r.IntN(5)), Relationship: g.rel()})
		}
		req.Updates = append(req.Updates, &pb.RelationshipUpdate{Operation: pb.RelationshipUpdate_OPERATION_TOUCH, Relationship: poison})
		for range g.r.IntN(3) {
			req.OptionalPreconditions = append(req.OptionalPreconditions, &pb.Precondition{Operation: pb.Precondition_Operation(g.r.IntN(4)), Filter: g.filter()})
		}
		slices.Reverse(req.Updates[:len(req.Updates)-g.r.IntN(2)]) // the poison is not always last
		_, err := f.perms.WriteRelationships(ctx, req)
		return "WriteRelationships", err
	case 8: // a random filter, guarded by a precondition that fails
		_, err := f.perms.DeleteRelationships(ctx, &pb.DeleteRelationshipsRequest{
			RelationshipFilter: g.filter(), OptionalLimit: g.r.Uint32(), OptionalAllowPartialDeletions: g.r.IntN(2) == 0,
			OptionalPreconditions: []*pb.Precondition{{Operation: pb.Precondition_OPERATION_MUST_EXIST, Filter: &pb.RelationshipFilter{ResourceType: "doc", OptionalResourceId: "never-written"}}},
		})
		return "DeleteRelationships", err
	case 9: // schema text that never parses
		_, err := f.schema.WriteSchema(ctx, &pb.WriteSchemaRequest{Schema: g.str() + " definition { " + g.str()})
		return "WriteSchema", err
	default: // an import whose last batch carries the poison
		s, err := f.perms.ImportRelationships(ctx)
		if err != nil {
			return "ImportRelationships", err
		}
		for range g.r.IntN(3) {
			_ = s.Send(&pb.ImportRelationshipsRequest{Relationships: []*pb.Relationship{g.rel(), g.rel()}})
		}
		_ = s.Send(&pb.ImportRelationshipsRequest{Relationships: []*pb.Relationship{poison}})
		_, err = s.CloseAndRecv()
		return "ImportRelationships", err
	}
}

// snapshot returns the head revision and every stored relationship.
func snapshot(t *testing.T, f *fixture) (uint64, []string) {
	t.Helper()
	head, err := f.eng.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.perms.ExportRelationships(context.Background(), &pb.ExportRelationshipsRequest{Consistency: full()})
	if err != nil {
		t.Fatal(err)
	}
	var rels []string
	for {
		msg, err := s.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range msg.GetRelationships() {
			rels = append(rels, prototext.Format(r))
		}
	}
	return uint64(head), rels
}

// checkAnswer fails the test when an error's code says the server did not
// understand that the input was bad.
func checkAnswer(t *testing.T, what string, err error) {
	t.Helper()
	switch c := status.Code(err); c {
	case codes.Unknown, codes.Internal:
		t.Errorf("%s: code %v for bad input: %v", what, c, err)
	}
}

// TestMalformedRequests throws random, mostly malformed requests at the
// real server: it must keep answering, classify every error (never
// Unknown or Internal), and commit nothing.
func TestMalformedRequests(t *testing.T) {
	iterations := 400
	if testing.Short() {
		iterations = 100
	}
	f, zk := queryFixture(t)
	g := &gen{r: rand.New(rand.NewPCG(5, 1)), valid: zk}
	head, before := snapshot(t, f)
	ctx := context.Background()
	for i := range iterations {
		method, err := g.call(ctx, f)
		checkAnswer(t, fmt.Sprintf("request %d (%s)", i, method), err)
	}
	// The server still answers, and nothing was committed.
	if _, err := f.perms.CheckPermission(ctx, &pb.CheckPermissionRequest{Consistency: full(), Resource: obj("doc", "readme"), Permission: "view", Subject: sub("user", "anne", "")}); err != nil {
		t.Fatalf("after the storm: %v", err)
	}
	headAfter, after := snapshot(t, f)
	if headAfter != head {
		t.Errorf("head revision %d -> %d: a malformed request committed", head, headAfter)
	}
	if !slices.Equal(before, after) {
		t.Errorf("stored relationships changed:\nbefore %q\nafter  %q", before, after)
	}
}
