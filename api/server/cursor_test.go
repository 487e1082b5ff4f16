package server

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/pemba-authz/pemba/api/pembav1"
)

// oldToken seals body as releases before token version 2 did: CRC-32C,
// base64url without padding.
func oldToken(body []byte) string {
	body = binary.BigEndian.AppendUint32(body, crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli)))
	return base64.RawURLEncoding.EncodeToString(body)
}

// Cursors minted by older releases (the API's, which nested a zookie, and
// the engine's, which ExportRelationships handed out) fail every streamed
// call with InvalidArgument and INVALID_CURSOR, naming the field, never
// with a panic or a wrong page.
func TestOldCursorsRejected(t *testing.T) {
	f, zk := queryFixture(t)
	ctx := context.Background()
	fp := f.eng.Fingerprint()
	apiV1 := []byte{1}
	apiV1 = binary.AppendUvarint(apiV1, uint64(len(zk.GetToken())))
	apiV1 = append(apiV1, zk.GetToken()...)
	apiV1 = binary.BigEndian.AppendUint64(apiV1, 12345)
	apiV1 = append(apiV1, "readme"...)
	engineV1 := append([]byte{1}, fp[:]...)
	engineV1 = binary.AppendUvarint(engineV1, 1)
	engineV1 = binary.BigEndian.AppendUint64(engineV1, 12345)
	engineV1 = append(engineV1, "doc:public#viewer@user:*"...)
	calls := map[string]func(*pb.Cursor) error{
		"ReadRelationships": func(c *pb.Cursor) error {
			return drain(func() (func() (*pb.ReadRelationshipsResponse, error), error) {
				s, err := f.perms.ReadRelationships(ctx, &pb.ReadRelationshipsRequest{RelationshipFilter: &pb.RelationshipFilter{ResourceType: "doc"}, OptionalCursor: c})
				if err != nil {
					return nil, err
				}
				return s.Recv, nil
			}())
		},
		"ExportRelationships": func(c *pb.Cursor) error {
			return drain(func() (func() (*pb.ExportRelationshipsResponse, error), error) {
				s, err := f.perms.ExportRelationships(ctx, &pb.ExportRelationshipsRequest{OptionalCursor: c})
				if err != nil {
					return nil, err
				}
				return s.Recv, nil
			}())
		},
		"LookupResources": func(c *pb.Cursor) error {
			return drain(func() (func() (*pb.LookupResourcesResponse, error), error) {
				s, err := f.perms.LookupResources(ctx, &pb.LookupResourcesRequest{ResourceObjectType: "doc", Permission: "view", Subject: sub("user", "anne", ""), OptionalCursor: c})
				if err != nil {
					return nil, err
				}
				return s.Recv, nil
			}())
		},
		"LookupSubjects": func(c *pb.Cursor) error {
			return drain(func() (func() (*pb.LookupSubjectsResponse, error), error) {
				s, err := f.perms.LookupSubjects(ctx, &pb.LookupSubjectsRequest{Resource: obj("doc", "readme"), Permission: "view", SubjectObjectType: "user", OptionalCursor: c})
				if err != nil {
					return nil, err
				}
				return s.Recv, nil
			}())
		},
	}
	for name, call := range calls {
		for _, tt := range []struct{ kind, token string }{
			{"API version 1", oldToken(apiV1)},
			{"engine version 1", oldToken(engineV1)},
			{"zookie", zk.GetToken()},
			{"with CRLF", oldToken(apiV1) + "\r\n"},
			{"too long", strings.Repeat("A", MaxCursorLen+1)},
		} {
			t.Run(name+"/"+tt.kind, func(t *testing.T) {
				err := call(&pb.Cursor{Token: tt.token})
				wantCode(t, err, codes.InvalidArgument, ReasonInvalidCursor)
				if msg := status.Convert(err).Message(); !strings.Contains(msg, "optional_cursor.token") {
					t.Errorf("message %q does not name the field", msg)
				}
			})
		}
	}
}
