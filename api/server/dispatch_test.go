package server

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine/token"
)

// TestDispatchCheck: the service other cluster nodes call answers like
// CheckPermission at the same revision, and refuses malformed requests
// with InvalidArgument (the sender then evaluates locally).
func TestDispatchCheck(t *testing.T) {
	f, zk := queryFixture(t)
	ctx := context.Background()
	fp := f.eng.Fingerprint()
	rev, err := token.DecodeZookie(fp, zk.GetToken())
	if err != nil {
		t.Fatal(err)
	}
	api := pb.NewDispatchServiceClient(f.conn)
	req := func(mod func(*pb.DispatchCheckRequest)) *pb.DispatchCheckRequest {
		r := &pb.DispatchCheckRequest{
			DatastoreFingerprint: fp[:], Revision: rev, Now: timestamppb.New(f.clock.Now()),
			Resource: obj("doc", "readme"), Relation: "view", Subject: sub("user", "anne", ""),
		}
		if mod != nil {
			mod(r)
		}
		return r
	}
	answers := []struct {
		name string
		mod  func(*pb.DispatchCheckRequest)
		want pb.Permissionship
	}{
		{"member of a nested group", nil, pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION},
		{"banned", func(r *pb.DispatchCheckRequest) { r.Subject = sub("user", "bob", "") }, pb.Permissionship_PERMISSIONSHIP_NO_PERMISSION},
		{"caveat without context", func(r *pb.DispatchCheckRequest) {
			r.Resource, r.Subject = obj("doc", "secret"), sub("user", "dana", "")
		}, pb.Permissionship_PERMISSIONSHIP_CONDITIONAL_PERMISSION},
		{"caveat with context", func(r *pb.DispatchCheckRequest) {
			r.Resource, r.Subject, r.ContextJson = obj("doc", "secret"), sub("user", "dana", ""), []byte(`{"level": 5}`)
		}, pb.Permissionship_PERMISSIONSHIP_HAS_PERMISSION},
		{"expired at the sender's clock", func(r *pb.DispatchCheckRequest) {
			r.Resource, r.Subject = obj("doc", "old"), sub("user", "erin", "")
		}, pb.Permissionship_PERMISSIONSHIP_NO_PERMISSION},
	}
	for _, tc := range answers {
		t.Run(tc.name, func(t *testing.T) {
			r := req(tc.mod)
			got, err := api.DispatchCheck(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			if got.GetPermissionship() != tc.want {
				t.Errorf("DispatchCheck = %v, want %v", got.GetPermissionship(), tc.want)
			}
			if got.GetDepth() < 1 || got.GetDispatches() < 1 || got.GetCut() != 0 {
				t.Errorf("depth %d, dispatches %d, cut %d: want a real evaluation with no cut", got.GetDepth(), got.GetDispatches(), got.GetCut())
			}
		})
	}
	if got, err := api.DispatchCheck(ctx, req(func(r *pb.DispatchCheckRequest) {
		r.Resource, r.Subject = obj("doc", "new"), sub("user", "erin", "")
	})); err != nil || !got.GetExpiresAt().AsTime().Equal(time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("expiring grant: expires_at %v (%v), want 2099-01-01", got.GetExpiresAt(), err)
	}

	bad := []struct {
		name   string
		mod    func(*pb.DispatchCheckRequest)
		reason string
	}{
		{"no fingerprint", func(r *pb.DispatchCheckRequest) { r.DatastoreFingerprint = nil }, ReasonInvalidArgument},
		{"another datastore", func(r *pb.DispatchCheckRequest) { r.DatastoreFingerprint = []byte("otherdb!") }, ""},
		{"no clock", func(r *pb.DispatchCheckRequest) { r.Now = nil }, ReasonInvalidArgument},
		{"no resource", func(r *pb.DispatchCheckRequest) { r.Resource = nil }, ReasonInvalidArgument},
		{"bad relation name", func(r *pb.DispatchCheckRequest) { r.Relation = "Bad Name" }, ReasonInvalidArgument},
		{"unknown relation", func(r *pb.DispatchCheckRequest) { r.Relation = "nope" }, ""},
		{"bad path step", func(r *pb.DispatchCheckRequest) {
			r.Path = []*pb.DispatchPathStep{{Resource: obj("doc", "x"), Relation: ""}}
		}, ReasonInvalidArgument},
		{"context not an object", func(r *pb.DispatchCheckRequest) { r.ContextJson = []byte(`[1]`) }, ReasonInvalidArgument},
		{"future revision", func(r *pb.DispatchCheckRequest) { r.Revision = rev + 1000 }, ReasonFutureZookie},
		// A caller must not choose the clock that decides expiry.
		{"clock in the past", func(r *pb.DispatchCheckRequest) {
			r.Resource, r.Subject, r.Now = obj("doc", "old"), sub("user", "erin", ""), timestamppb.New(time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC))
		}, ""},
		{"clock ahead", func(r *pb.DispatchCheckRequest) { r.Now = timestamppb.New(f.clock.Now().Add(time.Hour)) }, ""},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := api.DispatchCheck(ctx, req(tc.mod))
			wantCode(t, err, codes.InvalidArgument, tc.reason)
		})
	}
}
