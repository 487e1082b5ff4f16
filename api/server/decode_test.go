package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/store/memstore"
)

// nestedContext is a caveat context nested depth levels deep, past
// protobuf's recursion limit (10,000 messages; a Struct level is three).
func nestedContext(depth int) *structpb.Struct {
	s := &structpb.Struct{Fields: map[string]*structpb.Value{"x": structpb.NewNumberValue(1)}}
	for range depth {
		s = &structpb.Struct{Fields: map[string]*structpb.Value{"n": structpb.NewStructValue(s)}}
	}
	return s
}

// TestUndecodableRequests sends, over a real connection, requests that do
// not decode to every method the fuzzer reaches (unary and streaming):
// each fails with INVALID_ARGUMENT, not INTERNAL, and the server goes on
// answering.
func TestUndecodableRequests(t *testing.T) {
	fx, _ := queryFixture(t)
	deep, err := proto.Marshal(&pb.CheckPermissionRequest{Consistency: full(), Resource: obj("doc", "readme"), Permission: "view", Subject: sub("user", "anne", ""), Context: nestedContext(5_000)})
	if err != nil {
		t.Fatal(err)
	}
	bodies := []struct {
		name string
		data []byte
	}{
		{"garbage", []byte{0xff, 0xff, 0xff}},
		{"truncated field", []byte{0x0a, 0x10, 'x'}},
		{"invalid wire type", []byte{0x0f, 0x00}},
	}
	for _, m := range fuzzMethods {
		for _, b := range bodies {
			t.Run(m.name+"/"+b.name, func(t *testing.T) {
				ctx := t.Context()
				var err error
				if m.stream {
					err = rawStream(ctx, fx.conn, m.name, b.data)
				} else {
					var out []byte
					err = fx.conn.Invoke(ctx, m.name, &b.data, &out, grpc.ForceCodec(rawCodec{}))
				}
				if c := status.Code(err); c != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "request does not decode") {
					t.Fatalf("code %v (%v), want InvalidArgument: request does not decode", c, err)
				}
			})
		}
	}
	t.Run("schema not UTF-8", func(t *testing.T) {
		data, out := []byte{0x0a, 0x02, 0xff, 0xfe}, []byte(nil) // field 1, schema
		err := fx.conn.Invoke(t.Context(), "/pemba.v1.SchemaService/WriteSchema", &data, &out, grpc.ForceCodec(rawCodec{}))
		if c := status.Code(err); c != codes.InvalidArgument {
			t.Fatalf("code %v (%v), want InvalidArgument", c, err)
		}
	})
	t.Run("deeply nested context", func(t *testing.T) {
		var out []byte
		err := fx.conn.Invoke(t.Context(), "/pemba.v1.PermissionsService/CheckPermission", &deep, &out, grpc.ForceCodec(rawCodec{}))
		if c := status.Code(err); c != codes.InvalidArgument {
			t.Fatalf("code %v (%v), want InvalidArgument", c, err)
		}
		t.Logf("%d bytes: %v", len(deep), err)
	})
	if _, err := fx.schema.ReadSchema(context.Background(), &pb.ReadSchemaRequest{Consistency: full()}); err != nil {
		t.Fatalf("the server stopped answering: %v", err)
	}
}

// TestHTTPUndecodableBodies: over the HTTP/JSON API, a body that is not
// the request's JSON (malformed, of the wrong shape, or a caveat context
// nested past protobuf's recursion limit) is 400 Bad Request, unary or
// streamed.
func TestHTTPUndecodableBodies(t *testing.T) {
	h := startHTTP(t, Config{Keys: []Key{{Name: "alice", Secret: httpTestKey}}}, RunConfig{})
	deep := `{"resource":{"objectType":"doc","objectId":"1"},"permission":"view","subject":{"object":{"objectType":"user","objectId":"tom"}},"context":` +
		strings.Repeat(`{"n":`, 20_000) + `1` + strings.Repeat(`}`, 20_000) + `}`
	for _, tc := range []struct{ path, body string }{
		{"/v1/permissions/check", `{not json`},
		{"/v1/permissions/check", `{"permission":17}`},
		{"/v1/permissions/check", deep},
		{"/v1/schema/write", `{"schema":`},
		{"/v1/permissions/resources", `[1,2`},
		{"/v1/relationships/read", `{"relationshipFilter":"doc"}`},
	} {
		if r := h.post(t, tc.path, tc.body, "Authorization", "Bearer "+httpTestKey); r.code != http.StatusBadRequest {
			t.Errorf("POST %s %.40q = %d %.200s, want 400", tc.path, tc.body, r.code, r.body)
		}
	}
}

// badGzip is a client compressor that labels its output gzip but writes
// the given bytes, or the message gzipped and cut short.
type badGzip struct {
	out      []byte
	truncate bool
}

func (b badGzip) Type() string { return "gzip" }

func (b badGzip) Do(w io.Writer, p []byte) error {
	if !b.truncate {
		_, err := w.Write(b.out)
		return err
	}
	var buf bytes.Buffer
	z := gzip.NewWriter(&buf)
	z.Write(p)
	z.Close()
	_, err := w.Write(buf.Bytes()[:buf.Len()/2])
	return err
}

// TestCompressedRequests: gzip requests that decompress are answered; a
// payload labelled gzip that does not decompress (not gzip, or cut short)
// is INVALID_ARGUMENT like any request that does not decode, unary or
// streamed; one that decompresses past the receive limit (a zip bomb) is
// RESOURCE_EXHAUSTED; and the server goes on answering.
func TestCompressedRequests(t *testing.T) {
	fx, _ := queryFixture(t)
	check := &pb.CheckPermissionRequest{Consistency: full(), Resource: obj("doc", "readme"), Permission: "view", Subject: sub("user", "anne", "")}
	lookup := &pb.LookupResourcesRequest{Consistency: full(), ResourceObjectType: "doc", Permission: "view", Subject: sub("user", "anne", "")}
	dial := func(t *testing.T, opt grpc.DialOption) pb.PermissionsServiceClient {
		conn, err := grpc.NewClient(fx.addr, grpc.WithTransportCredentials(insecure.NewCredentials()), opt)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return pb.NewPermissionsServiceClient(conn)
	}
	// corrupt sends what badGzip writes: grpc.WithCompressor is the one
	// per-connection way to label a payload gzip.
	corrupt := func(b badGzip) grpc.DialOption {
		//lint:ignore SA1019 see above
		return grpc.WithCompressor(b)
	}
	var bomb bytes.Buffer
	z := gzip.NewWriter(&bomb)
	z.Write(bytes.Repeat([]byte{0x0a, 0x00}, MaxRecvMsgBytes)) // empty field 1, over and over: twice the limit
	z.Close()
	for _, tc := range []struct {
		name string
		opt  grpc.DialOption
		want codes.Code
		msg  string
	}{
		{"gzip", grpc.WithDefaultCallOptions(grpc.UseCompressor("gzip")), codes.OK, ""},
		{"not gzip", corrupt(badGzip{out: []byte("not gzip at all")}), codes.InvalidArgument, "gzip payload does not decompress"},
		{"cut short", corrupt(badGzip{truncate: true}), codes.InvalidArgument, "gzip payload does not decompress"},
		{"zip bomb", corrupt(badGzip{out: bomb.Bytes()}), codes.ResourceExhausted, "larger than max"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, tc.opt)
			_, err := c.CheckPermission(t.Context(), check)
			if status.Code(err) != tc.want || !strings.Contains(status.Convert(err).Message(), tc.msg) {
				t.Fatalf("CheckPermission: %v, want %v %q", err, tc.want, tc.msg)
			}
			s, err := c.LookupResources(t.Context(), lookup)
			if err == nil {
				for err == nil {
					_, err = s.Recv()
				}
				if err == io.EOF {
					err = nil
				}
			}
			if status.Code(err) != tc.want || !strings.Contains(status.Convert(err).Message(), tc.msg) {
				t.Fatalf("LookupResources: %v, want %v %q", err, tc.want, tc.msg)
			}
		})
	}
	if _, err := fx.perms.CheckPermission(t.Context(), check); err != nil {
		t.Fatalf("the server stopped answering: %v", err)
	}
}

// padded is m's wire form followed by an unknown bytes field (number
// 9999) of n bytes, which decodes (protobuf keeps unknown fields) and
// changes nothing else.
func padded(t *testing.T, m proto.Message, n int) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	b = protowire.AppendTag(b, 9999, protowire.BytesType)
	return protowire.AppendBytes(b, make([]byte, n))
}

// TestLargeMessagesChargeMemoryBudget: a request message from
// heldMessageBytes up is charged to the engine's memory budget while its
// call runs, unary or streamed: one that does not fit beside the requests
// in flight is RESOURCE_EXHAUSTED (MEMORY_BUDGET_EXCEEDED) before its
// handler runs, one that fits is answered, and every charge is given
// back when the call ends.
func TestLargeMessagesChargeMemoryBudget(t *testing.T) {
	const budget = 1 << 20
	fx := newFixtureEngine(t, memstore.New(memstore.Options{}), engine.Options{Limits: engine.Limits{MemoryBudget: budget}}, Config{})
	fx.writeSchema()
	check := &pb.CheckPermissionRequest{Consistency: full(), Resource: obj("doc", "readme"), Permission: "view", Subject: sub("user", "anne", "")}
	lookup := &pb.LookupResourcesRequest{Consistency: full(), ResourceObjectType: "doc", Permission: "view", Subject: sub("user", "anne", "")}
	for _, tc := range []struct {
		name   string
		method string
		stream bool
		data   []byte
		want   codes.Code
	}{
		{"small check", "/pemba.v1.PermissionsService/CheckPermission", false, padded(t, check, 1<<10), codes.OK},
		{"large check that fits", "/pemba.v1.PermissionsService/CheckPermission", false, padded(t, check, budget/4), codes.OK},
		{"check past the budget", "/pemba.v1.PermissionsService/CheckPermission", false, padded(t, check, budget+1), codes.ResourceExhausted},
		{"large lookup that fits", "/pemba.v1.PermissionsService/LookupResources", true, padded(t, lookup, budget/4), codes.OK},
		{"lookup past the budget", "/pemba.v1.PermissionsService/LookupResources", true, padded(t, lookup, budget+1), codes.ResourceExhausted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := fx.eng.Stats().MemoryRefused
			var err error
			if tc.stream {
				err = rawStream(t.Context(), fx.conn, tc.method, tc.data)
			} else {
				var out []byte
				err = fx.conn.Invoke(t.Context(), tc.method, &tc.data, &out, grpc.ForceCodec(rawCodec{}))
			}
			if status.Code(err) != tc.want {
				t.Fatalf("%v, want %v", err, tc.want)
			}
			refused := fx.eng.Stats().MemoryRefused - before
			if tc.want == codes.ResourceExhausted {
				if reasonOf(err) != ReasonMemoryBudget || !strings.Contains(status.Convert(err).Message(), "request message of") {
					t.Errorf("%v (reason %s), want %s for the request message", err, reasonOf(err), ReasonMemoryBudget)
				}
				if refused != 1 {
					t.Errorf("refused counter moved by %d, want 1", refused)
				}
			} else if refused != 0 {
				t.Errorf("refused counter moved by %d, want 0", refused)
			}
			if n := fx.eng.Stats().MemoryInUse; n != 0 {
				t.Errorf("%d bytes still charged after the call ended", n)
			}
		})
	}
}
