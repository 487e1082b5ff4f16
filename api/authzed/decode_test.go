package authzed

import (
	"errors"
	"fmt"
	"io"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/authzed/grpcutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// rawCodec sends request bytes as they are, so the server's own decoding
// is what is tested.
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

func (rawCodec) Name() string { return "proto" }

// TestUndecodableRequests: authzed.api.v1 requests that do not decode
// (garbage, a caveat context nested past protobuf's recursion limit) fail
// with INVALID_ARGUMENT, as SpiceDB's do, not INTERNAL, on unary calls and
// streams, over a real connection.
func TestUndecodableRequests(t *testing.T) {
	f := newFixture(t)
	f.writeSchema(testSchema)
	conn, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpcutil.WithInsecureBearerToken(testKey))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctxv := &structpb.Struct{Fields: map[string]*structpb.Value{"x": structpb.NewNumberValue(1)}}
	for range 5_000 {
		ctxv = &structpb.Struct{Fields: map[string]*structpb.Value{"n": structpb.NewStructValue(ctxv)}}
	}
	deep, err := proto.Marshal(&v1.CheckPermissionRequest{
		Resource:   &v1.ObjectReference{ObjectType: "doc", ObjectId: "1"},
		Permission: "view",
		Subject:    &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: "user", ObjectId: "anne"}},
		Context:    ctxv,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, method string
		stream       bool
		data         []byte
	}{
		{"check garbage", "/authzed.api.v1.PermissionsService/CheckPermission", false, []byte{0xff, 0xff, 0xff}},
		{"check deeply nested context", "/authzed.api.v1.PermissionsService/CheckPermission", false, deep},
		{"write schema garbage", "/authzed.api.v1.SchemaService/WriteSchema", false, []byte{0x0f, 0x00}},
		{"lookup resources garbage", "/authzed.api.v1.PermissionsService/LookupResources", true, []byte{0xff, 0xff, 0xff}},
		{"read relationships garbage", "/authzed.api.v1.PermissionsService/ReadRelationships", true, []byte{0x0a, 0x10, 'x'}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			var err error
			if tc.stream {
				var s grpc.ClientStream
				s, err = conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, tc.method, grpc.ForceCodec(rawCodec{}))
				if err == nil {
					if err = s.SendMsg(&tc.data); err == nil || errors.Is(err, io.EOF) {
						_ = s.CloseSend()
						var out []byte
						err = s.RecvMsg(&out)
					}
				}
			} else {
				var out []byte
				err = conn.Invoke(ctx, tc.method, &tc.data, &out, grpc.ForceCodec(rawCodec{}))
			}
			if c := status.Code(err); c != codes.InvalidArgument {
				t.Fatalf("code %v (%v), want InvalidArgument", c, err)
			}
		})
	}
}
