package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"
	"sync/atomic"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	authzed "github.com/authzed/authzed-go/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pemba-authz/pemba/api/client"
	"github.com/pemba-authz/pemba/bench/workload"
	"github.com/pemba-authz/pemba/engine/tuple"
)

// SpiceDB is a Target that calls any server speaking SpiceDB's public API,
// authzed.api.v1 (SpiceDB itself, or pemba serve, which serves it beside
// pemba.v1), through github.com/authzed/authzed-go's client: the same
// workload measures both engines, or Pemba through both of its APIs.
type SpiceDB struct {
	clients []*authzed.Client
	next    atomic.Uint32
	c       *v1.Consistency
}

// spicedbBatch is the most relationships one import message or one
// WriteRelationships call carries: SpiceDB's default
// --write-relationships-max-updates-per-call.
const spicedbBatch = 1000

// spicedbLookupPage is the page size of LookupResources: SpiceDB's
// default --max-lookup-resources-limit refuses larger limits.
const spicedbLookupPage = 1000

// NewSpiceDB connects to an authzed.api.v1 server (lazily: the first call
// dials). The key travels as "authorization: Bearer <key>", as SpiceDB's
// clients send it; over plaintext only when opts.TLS is nil, as with
// authzed-go's insecure bearer-token option.
func NewSpiceDB(opts GRPCOptions) (*SpiceDB, error) {
	if opts.Addr == "" {
		return nil, fmt.Errorf("%w: the grpc mode needs a server address", ErrUsage)
	}
	dial := opts.DialOptions
	if dial == nil {
		dial = transport(opts)
	}
	if opts.Key != "" {
		dial = append(dial[:len(dial):len(dial)], grpc.WithPerRPCCredentials(client.KeyCredentials(opts.Key, opts.TLS != nil)))
	}
	addrs := strings.Split(opts.Addr, ",")
	n := opts.Conns
	if n <= 0 {
		n = DefaultGRPCConns
	}
	n = max(n, len(addrs))
	t := &SpiceDB{c: spicedbConsistency(opts.Consistency)}
	for i := range n {
		addr := strings.TrimSpace(addrs[i%len(addrs)])
		c, err := authzed.NewClient(addr, dial...)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("bench: connect to %s: %w", addr, err), t.Close())
		}
		t.clients = append(t.clients, c)
	}
	return t, nil
}

// transport is the connection security opts ask for: TLS when opts.TLS is
// set, plaintext otherwise.
func transport(opts GRPCOptions) []grpc.DialOption {
	if opts.TLS != nil {
		return []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(opts.TLS))}
	}
	return []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
}

func spicedbConsistency(c Consistency) *v1.Consistency {
	if c == FullyConsistent {
		return &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}}
	}
	return &v1.Consistency{Requirement: &v1.Consistency_MinimizeLatency{MinimizeLatency: true}}
}

// pick returns the next connection's client, round robin.
func (t *SpiceDB) pick() *authzed.Client {
	return t.clients[int(t.next.Add(1))%len(t.clients)]
}

// Load writes the schema and imports the relationships with
// ImportBulkRelationships. The first batch goes alone in its own stream,
// so that a server without that RPC (SpiceDB before v1.35 answers
// UNIMPLEMENTED) is detected before any relationship is lost; the import
// then continues with WriteRelationships batches of TOUCH updates.
func (t *SpiceDB) Load(ctx context.Context, schema string, rels iter.Seq2[tuple.Relationship, error]) (int, error) {
	c := t.clients[0]
	if _, err := c.WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: schema}); err != nil {
		return 0, fmt.Errorf("bench: write schema: %w", err)
	}
	next, stop := iter.Pull2(rels)
	defer stop()
	first, err := spicedbBatchOf(next)
	if err != nil || len(first) == 0 {
		return 0, err
	}
	once := false
	n, err := importStream(ctx, c, func() ([]*v1.Relationship, error) {
		if once {
			return nil, nil
		}
		once = true
		return first, nil
	})
	if status.Code(err) == codes.Unimplemented {
		return writeBatches(ctx, c, first, next)
	}
	if err != nil {
		return 0, err
	}
	m, err := importStream(ctx, c, func() ([]*v1.Relationship, error) { return spicedbBatchOf(next) })
	return n + m, err
}

// spicedbBatchOf pulls up to spicedbBatch relationships, converted; an
// empty batch means the source is exhausted.
func spicedbBatchOf(next func() (tuple.Relationship, error, bool)) ([]*v1.Relationship, error) {
	batch := make([]*v1.Relationship, 0, spicedbBatch)
	for len(batch) < spicedbBatch {
		r, err, ok := next()
		if !ok {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("bench: import source: %w", err)
		}
		pr, err := spicedbRelationship(r)
		if err != nil {
			return nil, err
		}
		batch = append(batch, pr)
	}
	return batch, nil
}

// importStream sends the batches next returns, until an empty one, in one
// ImportBulkRelationships stream and returns how many the server loaded.
// No batch opens no call; an error from next abandons the stream, so the
// server commits nothing of it.
func importStream(ctx context.Context, c *authzed.Client, next func() ([]*v1.Relationship, error)) (int, error) {
	b, err := next()
	if err != nil || len(b) == 0 {
		return 0, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.ImportBulkRelationships(ctx)
	if err != nil {
		return 0, fmt.Errorf("bench: import: %w", err)
	}
	for len(b) > 0 {
		if err := stream.Send(&v1.ImportBulkRelationshipsRequest{Relationships: b}); err != nil {
			break // the server's error comes with CloseAndRecv
		}
		if b, err = next(); err != nil {
			return 0, err // cancel abandons the stream
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return 0, fmt.Errorf("bench: import: %w", err)
	}
	return int(resp.GetNumLoaded()), nil
}

// writeBatches imports with WriteRelationships: first, then the rest of
// next, spicedbBatch TOUCH updates a call.
func writeBatches(ctx context.Context, c *authzed.Client, first []*v1.Relationship, next func() (tuple.Relationship, error, bool)) (int, error) {
	n := 0
	for b := first; len(b) > 0; {
		w := &v1.WriteRelationshipsRequest{Updates: make([]*v1.RelationshipUpdate, len(b))}
		for i, r := range b {
			w.Updates[i] = &v1.RelationshipUpdate{Operation: v1.RelationshipUpdate_OPERATION_TOUCH, Relationship: r}
		}
		if _, err := c.WriteRelationships(ctx, w); err != nil {
			return n, fmt.Errorf("bench: import with WriteRelationships (the server has no ImportBulkRelationships): %w", err)
		}
		n += len(b)
		var err error
		if b, err = spicedbBatchOf(next); err != nil {
			return n, err
		}
	}
	return n, nil
}

// Do sends req, reading every result of a lookup.
func (t *SpiceDB) Do(ctx context.Context, req *workload.Request) (Outcome, error) {
	c := t.pick()
	reqCtx, err := spicedbContext(req.Context)
	if err != nil {
		return Outcome{}, err
	}
	switch req.Op {
	case workload.OpCheck:
		resp, err := c.CheckPermission(ctx, &v1.CheckPermissionRequest{
			Consistency: t.c, Resource: spicedbObject(req.Resource), Permission: req.Permission,
			Subject: spicedbSubject(req.Subject), Context: reqCtx,
		})
		if err != nil {
			return Outcome{}, err
		}
		return Outcome{Allowed: resp.GetPermissionship() == v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION}, nil
	case workload.OpLookupResources:
		return t.lookupResources(ctx, c, req, reqCtx)
	case workload.OpLookupSubjects:
		stream, err := c.LookupSubjects(ctx, &v1.LookupSubjectsRequest{
			Consistency: t.c, Resource: spicedbObject(req.Resource), Permission: req.Permission,
			SubjectObjectType: req.SubjectType, Context: reqCtx,
		})
		if err != nil {
			return Outcome{}, err
		}
		return drainStream(stream)
	case workload.OpWrite:
		w := &v1.WriteRelationshipsRequest{Updates: make([]*v1.RelationshipUpdate, len(req.Updates))}
		for i, u := range req.Updates {
			r, err := spicedbRelationship(u.Relationship)
			if err != nil {
				return Outcome{}, err
			}
			op := v1.RelationshipUpdate_OPERATION_TOUCH
			if u.Delete {
				op = v1.RelationshipUpdate_OPERATION_DELETE
			}
			w.Updates[i] = &v1.RelationshipUpdate{Operation: op, Relationship: r}
		}
		_, err := c.WriteRelationships(ctx, w)
		return Outcome{}, err
	}
	return Outcome{}, fmt.Errorf("%w: operation %s", ErrUsage, req.Op)
}

// lookupResources pages through every result with the cursor of each
// page's last result, as a SpiceDB client does.
func (t *SpiceDB) lookupResources(ctx context.Context, c *authzed.Client, req *workload.Request, reqCtx *structpb.Struct) (Outcome, error) {
	total := 0
	var cursor *v1.Cursor
	for {
		stream, err := c.LookupResources(ctx, &v1.LookupResourcesRequest{
			Consistency: t.c, ResourceObjectType: req.ResourceType, Permission: req.Permission,
			Subject: spicedbSubject(req.Subject), Context: reqCtx,
			OptionalLimit: spicedbLookupPage, OptionalCursor: cursor,
		})
		if err != nil {
			return Outcome{Results: total}, err
		}
		n := 0
		for {
			resp, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return Outcome{Results: total + n}, err
			}
			n++
			cursor = resp.GetAfterResultCursor()
		}
		total += n
		if n < spicedbLookupPage || cursor == nil {
			return Outcome{Results: total}, nil
		}
	}
}

// Stats reports nothing: the API does not expose the server's counters.
func (t *SpiceDB) Stats() TargetStats { return TargetStats{} }

// Close closes the connections.
func (t *SpiceDB) Close() error {
	var errs []error
	for _, c := range t.clients {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

func spicedbObject(o tuple.ObjectRef) *v1.ObjectReference {
	return &v1.ObjectReference{ObjectType: o.Type, ObjectId: o.ID}
}

// spicedbSubject converts a subject; a plain subject has no relation on
// the wire (SpiceDB's "..." is spelled as the empty relation).
func spicedbSubject(s tuple.SubjectRef) *v1.SubjectReference {
	rel := s.Relation
	if rel == tuple.Ellipsis {
		rel = ""
	}
	return &v1.SubjectReference{Object: spicedbObject(tuple.ObjectRef{Type: s.Type, ID: s.ID}), OptionalRelation: rel}
}

// spicedbContext converts a caveat context; a value protobuf's Struct
// cannot hold is the workload's fault, hence a usage error.
func spicedbContext(ctx map[string]any) (*structpb.Struct, error) {
	if len(ctx) == 0 {
		return nil, nil
	}
	s, err := structpb.NewStruct(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: caveat context: %w", ErrUsage, err)
	}
	return s, nil
}

// spicedbRelationship converts r with its caveat and expiration.
func spicedbRelationship(r tuple.Relationship) (*v1.Relationship, error) {
	out := &v1.Relationship{Resource: spicedbObject(r.Resource), Relation: r.Relation, Subject: spicedbSubject(r.Subject)}
	if r.Caveat != nil {
		ctx, err := spicedbContext(r.Caveat.Context)
		if err != nil {
			return nil, fmt.Errorf("%w (relationship %s)", err, r.Key())
		}
		out.OptionalCaveat = &v1.ContextualizedCaveat{CaveatName: r.Caveat.Name, Context: ctx}
	}
	if !r.Expiration.IsZero() {
		out.OptionalExpiresAt = timestamppb.New(r.Expiration)
	}
	return out, nil
}
