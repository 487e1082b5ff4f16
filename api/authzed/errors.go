package authzed

import (
	"context"
	"errors"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"github.com/pemba-authz/pemba/engine"
)

// SpiceDB's error domain: the google.rpc.ErrorInfo detail of its statuses
// has this domain and a v1.ErrorReason name as its reason.
const spicedbDomain = "authzed.com"

// spicedbRule gives the code and reason SpiceDB answers for the errors
// matching target (errors.Is), where they differ from pemba.v1's or add a
// reason SpiceDB clients switch on. The first match wins.
type spicedbRule struct {
	target error
	code   codes.Code
	reason v1.ErrorReason
}

var spicedbRules = []spicedbRule{
	// SpiceDB answers a reference to a type or relation its schema lacks
	// with FAILED_PRECONDITION (the request may be right for another
	// schema); pemba.v1 says INVALID_ARGUMENT.
	{engine.ErrUnknownDefinition, codes.FailedPrecondition, v1.ErrorReason_ERROR_REASON_UNKNOWN_DEFINITION},
	{engine.ErrUnknownRelation, codes.FailedPrecondition, v1.ErrorReason_ERROR_REASON_UNKNOWN_RELATION_OR_PERMISSION},
	{engine.ErrUnknownCaveat, codes.FailedPrecondition, v1.ErrorReason_ERROR_REASON_UNKNOWN_CAVEAT},
	{engine.ErrWriteToPermission, codes.InvalidArgument, v1.ErrorReason_ERROR_REASON_CANNOT_UPDATE_PERMISSION},
	{engine.ErrSubjectNotAllowed, codes.InvalidArgument, v1.ErrorReason_ERROR_REASON_INVALID_SUBJECT_TYPE},
	{engine.ErrRelationshipExists, codes.AlreadyExists, v1.ErrorReason_ERROR_REASON_ATTEMPT_TO_RECREATE_RELATIONSHIP},
	{engine.ErrPreconditionFailed, codes.FailedPrecondition, v1.ErrorReason_ERROR_REASON_WRITE_OR_DELETE_PRECONDITION_FAILURE},
	{engine.ErrDuplicateUpdate, codes.InvalidArgument, v1.ErrorReason_ERROR_REASON_UPDATES_ON_SAME_RELATIONSHIP},
	{engine.ErrMaxDepth, codes.ResourceExhausted, v1.ErrorReason_ERROR_REASON_MAXIMUM_DEPTH_EXCEEDED},
	{engine.ErrInvalidCursor, codes.InvalidArgument, v1.ErrorReason_ERROR_REASON_INVALID_CURSOR},
	{engine.ErrCaveat, codes.InvalidArgument, v1.ErrorReason_ERROR_REASON_CAVEAT_EVALUATION_ERROR},
}

// limitReasons names SpiceDB's reason for a request over one of the
// engine's limits (engine.LimitError.Limit); SpiceDB answers all of them
// with INVALID_ARGUMENT where pemba.v1 says RESOURCE_EXHAUSTED.
var limitReasons = map[string]v1.ErrorReason{
	"updates per write":       v1.ErrorReason_ERROR_REASON_TOO_MANY_UPDATES_IN_REQUEST,
	"preconditions per write": v1.ErrorReason_ERROR_REASON_TOO_MANY_PRECONDITIONS_IN_REQUEST,
	"items per bulk check":    v1.ErrorReason_ERROR_REASON_TOO_MANY_CHECKS_IN_REQUEST,
	"bytes of caveat context": v1.ErrorReason_ERROR_REASON_MAX_RELATIONSHIP_CONTEXT_SIZE,
}

// spicedbStatus converts err into the status a SpiceDB client expects:
// api/server's error table gives the code, message and Pemba's ErrorInfo
// (and logs internal errors), and spicedbRules adjust the code and add
// SpiceDB's ErrorInfo where SpiceDB documents one.
func (a *api) spicedbStatus(method string, err error) *status.Status {
	st := a.srv.Status(method, err)
	switch st.Code() {
	case codes.InvalidArgument, codes.FailedPrecondition, codes.AlreadyExists, codes.ResourceExhausted:
	default:
		// Context, availability, authentication and internal errors
		// mean the same in both APIs.
		return st
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return st
	}
	code, reason := st.Code(), v1.ErrorReason_ERROR_REASON_UNSPECIFIED
	var le *engine.LimitError
	var dle *engine.DeleteLimitError
	if errors.As(err, &dle) {
		code, reason = codes.FailedPrecondition, v1.ErrorReason_ERROR_REASON_TOO_MANY_RELATIONSHIPS_FOR_TRANSACTIONAL_DELETE
	} else if errors.As(err, &le) {
		code, reason = codes.InvalidArgument, v1.ErrorReason_ERROR_REASON_EXCEEDS_MAXIMUM_ALLOWABLE_LIMIT
		if r, ok := limitReasons[le.Limit]; ok {
			reason = r
		}
	} else {
		for _, r := range spicedbRules {
			if errors.Is(err, r.target) {
				code, reason = r.code, r.reason
				break
			}
		}
	}
	out := status.New(code, st.Message())
	var details []protoadapt.MessageV1
	if reason != v1.ErrorReason_ERROR_REASON_UNSPECIFIED {
		details = append(details, &errdetails.ErrorInfo{Reason: reason.String(), Domain: spicedbDomain})
	}
	for _, d := range st.Details() {
		if m, ok := d.(protoadapt.MessageV1); ok {
			details = append(details, m)
		}
	}
	if len(details) > 0 {
		if wd, err := out.WithDetails(details...); err == nil {
			out = wd
		}
	}
	return out
}

// rewritten returns a copy of desc whose handlers convert their errors
// with spicedbStatus inside the server's interceptors, so that metrics
// and logs see the code the client gets.
func (a *api) rewritten(desc *grpc.ServiceDesc) *grpc.ServiceDesc {
	d := *desc
	d.Methods = make([]grpc.MethodDesc, len(desc.Methods))
	for i, m := range desc.Methods {
		method := "/" + desc.ServiceName + "/" + m.MethodName
		h := m.Handler
		d.Methods[i] = grpc.MethodDesc{MethodName: m.MethodName, Handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
			if ic == nil {
				resp, err := h(srv, ctx, dec, nil)
				return resp, a.rewrite(method, err)
			}
			wrapped := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
				return ic(ctx, req, info, func(ctx context.Context, req any) (any, error) {
					resp, err := handler(ctx, req)
					return resp, a.rewrite(method, err)
				})
			}
			return h(srv, ctx, dec, wrapped)
		}}
	}
	d.Streams = make([]grpc.StreamDesc, len(desc.Streams))
	for i, s := range desc.Streams {
		method := "/" + desc.ServiceName + "/" + s.StreamName
		h := s.Handler
		d.Streams[i] = s
		d.Streams[i].Handler = func(srv any, stream grpc.ServerStream) error {
			return a.rewrite(method, h(srv, stream))
		}
	}
	return &d
}

func (a *api) rewrite(method string, err error) error {
	if err == nil {
		return nil
	}
	return a.spicedbStatus(method, err).Err()
}
