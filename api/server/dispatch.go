package server

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/pemba-authz/pemba/engine"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/pemba-authz/pemba/api/pembav1"
)

// dispatcher serves DispatchService: subproblems sent by the other nodes
// of a cluster to this one, their owner (see package api/cluster).
type dispatcher struct {
	pb.UnimplementedDispatchServiceServer
	s *Server
}

// DispatchCheck evaluates one subproblem at the exact revision given.
func (d *dispatcher) DispatchCheck(ctx context.Context, req *pb.DispatchCheckRequest) (*pb.DispatchCheckResponse, error) {
	in, err := dispatchFromProto(req)
	if err != nil {
		return nil, err
	}
	var fp engine.Fingerprint
	if len(req.GetDatastoreFingerprint()) != len(fp) {
		return nil, fieldf("datastore_fingerprint", "must be %d bytes", len(fp))
	}
	copy(fp[:], req.GetDatastoreFingerprint())
	res, err := d.s.eng.DispatchCheck(ctx, fp, in)
	if err != nil {
		return nil, err
	}
	out := &pb.DispatchCheckResponse{
		Permissionship: permissionshipToProto(res.Permissionship),
		MissingContext: res.MissingContext,
		Cut:            uint32(res.Cut),
		Dispatches:     uint32(res.Dispatches),
		Depth:          uint32(res.Depth),
	}
	if !res.Expires.IsZero() {
		out.ExpiresAt = timestamppb.New(res.Expires)
	}
	return out, nil
}

// dispatchFromProto converts and validates the names of a dispatched
// subproblem (the engine resolves them against the schema).
func dispatchFromProto(req *pb.DispatchCheckRequest) (*engine.DispatchRequest, error) {
	if req.GetNow() == nil {
		return nil, missing("now")
	}
	if err := req.GetNow().CheckValid(); err != nil {
		return nil, fieldErr("now", err)
	}
	res, err := objectFromProto("resource", req.GetResource())
	if err != nil {
		return nil, err
	}
	if err := checkRelation("relation", req.GetRelation()); err != nil {
		return nil, err
	}
	sub, err := subjectFromProto("subject", req.GetSubject())
	if err != nil {
		return nil, err
	}
	out := &engine.DispatchRequest{
		Revision: engine.Revision(req.GetRevision()),
		Now:      req.GetNow().AsTime(),
		Resource: res,
		Relation: req.GetRelation(),
		Subject:  sub,
		Path:     make([]engine.PathStep, len(req.GetPath())),
	}
	for i, p := range req.GetPath() {
		at := index("path", i)
		o, err := objectFromProto(join(at, "resource"), p.GetResource())
		if err != nil {
			return nil, err
		}
		if err := checkRelation(join(at, "relation"), p.GetRelation()); err != nil {
			return nil, err
		}
		out.Path[i] = engine.PathStep{ResourceType: o.Type, ResourceID: o.ID, Relation: p.GetRelation()}
	}
	if b := req.GetContextJson(); len(b) > 0 {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber() // integers stay exact; caveats accept json.Number
		if err := dec.Decode(&out.Context); err != nil {
			return nil, fieldErr("context_json", err)
		}
	}
	return out, nil
}
