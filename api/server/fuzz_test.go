package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/pemba-authz/pemba/api/pembav1"
)

// rawCodec sends request bytes as they are and returns response bytes
// undecoded, so the fuzzer reaches the server's own decoding.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("rawCodec: %T", v)
	}
	return *b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: %T", v)
	}
	*b = append((*b)[:0], data...)
	return nil
}

func (rawCodec) Name() string { return "proto" } // the server decodes with its proto codec

var _ encoding.Codec = rawCodec{}

// fuzzMethods are the calls the fuzzer reaches; Watch is left out (a
// valid request waits for changes forever).
var fuzzMethods = []struct {
	name   string
	stream bool
	seed   proto.Message
}{
	{"/pemba.v1.PermissionsService/CheckPermission", false, &pb.CheckPermissionRequest{Consistency: full(), Resource: obj("doc", "readme"), Permission: "view", Subject: sub("user", "anne", "")}},
	{"/pemba.v1.PermissionsService/CheckBulkPermissions", false, &pb.CheckBulkPermissionsRequest{Items: []*pb.CheckBulkPermissionsRequestItem{{Resource: obj("doc", "readme"), Permission: "view", Subject: sub("user", "anne", "")}}}},
	{"/pemba.v1.PermissionsService/CheckPermissionSet", false, &pb.CheckPermissionSetRequest{Consistency: full(), Resources: []*pb.ObjectReference{obj("doc", "readme")}, Subject: sub("user", "anne", ""), ContextualRelationships: []*pb.Relationship{{Resource: obj("doc", "readme"), Relation: "viewer", Subject: sub("user", "bob", "")}}}},
	{"/pemba.v1.PermissionsService/ExpandPermissionTree", false, &pb.ExpandPermissionTreeRequest{Resource: obj("doc", "readme"), Permission: "view"}},
	{"/pemba.v1.PermissionsService/WriteRelationships", false, &pb.WriteRelationshipsRequest{Updates: []*pb.RelationshipUpdate{{Operation: pb.RelationshipUpdate_OPERATION_TOUCH, Relationship: poison}}}},
	{"/pemba.v1.PermissionsService/DeleteRelationships", false, &pb.DeleteRelationshipsRequest{RelationshipFilter: &pb.RelationshipFilter{ResourceType: "doc", OptionalResourceId: "gone"}}},
	{"/pemba.v1.SchemaService/ReadSchema", false, &pb.ReadSchemaRequest{}},
	{"/pemba.v1.SchemaService/WriteSchema", false, &pb.WriteSchemaRequest{Schema: "definition user {}"}},
	{"/pemba.v1.PermissionsService/LookupResources", true, &pb.LookupResourcesRequest{ResourceObjectType: "doc", Permission: "view", Subject: sub("user", "anne", "")}},
	{"/pemba.v1.PermissionsService/LookupSubjects", true, &pb.LookupSubjectsRequest{Resource: obj("doc", "readme"), Permission: "view", SubjectObjectType: "user"}},
	{"/pemba.v1.PermissionsService/ReadRelationships", true, &pb.ReadRelationshipsRequest{RelationshipFilter: &pb.RelationshipFilter{ResourceType: "doc"}}},
	{"/pemba.v1.PermissionsService/ExportRelationships", true, &pb.ExportRelationshipsRequest{}},
	{"/pemba.v1.DispatchService/DispatchCheck", false, &pb.DispatchCheckRequest{DatastoreFingerprint: make([]byte, 8), Revision: 2, Now: &timestamppb.Timestamp{Seconds: 1e9}, Resource: obj("doc", "readme"), Relation: "view", Subject: sub("user", "anne", ""), ContextJson: []byte(`{"level":3}`), Path: []*pb.DispatchPathStep{{Resource: obj("folder", "f"), Relation: "view"}}}},
}

// FuzzRequestBytes sends arbitrary bytes as the request of each method
// to the real in-process server. The server must not panic, must keep
// answering, and must classify every error: bytes that do not decode are
// INVALID_ARGUMENT (decode.go), never INTERNAL.
func FuzzRequestBytes(f *testing.F) {
	for i, m := range fuzzMethods {
		b, err := proto.Marshal(m.seed)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), b)
		f.Add(uint8(i), []byte{0xff, 0xff, 0xff})
	}
	fx, _ := queryFixture(f)
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		m := fuzzMethods[int(which)%len(fuzzMethods)]
		ctx := context.Background()
		var err error
		if !m.stream {
			var out []byte
			err = fx.conn.Invoke(ctx, m.name, &data, &out, grpc.ForceCodec(rawCodec{}))
		} else {
			err = rawStream(ctx, fx.conn, m.name, data)
		}
		switch c := status.Code(err); {
		case c == codes.Unknown, c == codes.Internal:
			t.Errorf("%s: code %v: %v", m.name, c, err)
		}
		// The server still answers.
		if _, err := fx.schema.ReadSchema(ctx, &pb.ReadSchemaRequest{Consistency: full()}); err != nil {
			t.Fatalf("after %s: %v", m.name, err)
		}
	})
}

// rawStream sends data as the one request of a server stream and reads
// the stream to its end.
func rawStream(ctx context.Context, conn *grpc.ClientConn, method string, data []byte) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, method, grpc.ForceCodec(rawCodec{}))
	if err != nil {
		return err
	}
	if err := s.SendMsg(&data); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if err := s.CloseSend(); err != nil {
		return err
	}
	for {
		var out []byte
		if err := s.RecvMsg(&out); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}
