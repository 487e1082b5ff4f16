//lint:file-ignore SA1019 this file serves the deprecated experimental calls on purpose: older zed and clients still send them.

package authzed

import (
	"context"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// experimental implements v1.ExperimentalServiceServer for the calls that
// PermissionsService took over (older zed and clients still send them):
// BulkImportRelationships, BulkExportRelationships and
// BulkCheckPermission, by converting to and from the same handlers. The
// other experimental calls are refused by name.
type experimental struct {
	v1.UnimplementedExperimentalServiceServer
	p *permissions
}

// BulkImportRelationships is ImportBulkRelationships.
func (x *experimental) BulkImportRelationships(stream grpc.ClientStreamingServer[v1.BulkImportRelationshipsRequest, v1.BulkImportRelationshipsResponse]) error {
	return x.p.ImportBulkRelationships(importStream{stream})
}

type importStream struct {
	grpc.ClientStreamingServer[v1.BulkImportRelationshipsRequest, v1.BulkImportRelationshipsResponse]
}

func (s importStream) Recv() (*v1.ImportBulkRelationshipsRequest, error) {
	m, err := s.ClientStreamingServer.Recv()
	if err != nil {
		return nil, err
	}
	return &v1.ImportBulkRelationshipsRequest{Relationships: m.GetRelationships()}, nil
}

func (s importStream) SendAndClose(r *v1.ImportBulkRelationshipsResponse) error {
	return s.ClientStreamingServer.SendAndClose(&v1.BulkImportRelationshipsResponse{NumLoaded: r.GetNumLoaded()})
}

// BulkExportRelationships is ExportBulkRelationships.
func (x *experimental) BulkExportRelationships(req *v1.BulkExportRelationshipsRequest, stream grpc.ServerStreamingServer[v1.BulkExportRelationshipsResponse]) error {
	return x.p.ExportBulkRelationships(&v1.ExportBulkRelationshipsRequest{
		Consistency: req.GetConsistency(), OptionalLimit: req.GetOptionalLimit(), OptionalCursor: req.GetOptionalCursor(),
		OptionalRelationshipFilter: req.GetOptionalRelationshipFilter(),
	}, exportStream{stream})
}

type exportStream struct {
	grpc.ServerStreamingServer[v1.BulkExportRelationshipsResponse]
}

func (s exportStream) Send(r *v1.ExportBulkRelationshipsResponse) error {
	return s.ServerStreamingServer.Send(&v1.BulkExportRelationshipsResponse{AfterResultCursor: r.GetAfterResultCursor(), Relationships: r.GetRelationships()})
}

// BulkCheckPermission is CheckBulkPermissions.
func (x *experimental) BulkCheckPermission(ctx context.Context, req *v1.BulkCheckPermissionRequest) (*v1.BulkCheckPermissionResponse, error) {
	in := &v1.CheckBulkPermissionsRequest{Consistency: req.GetConsistency()}
	for _, it := range req.GetItems() {
		in.Items = append(in.Items, &v1.CheckBulkPermissionsRequestItem{
			Resource: it.GetResource(), Permission: it.GetPermission(), Subject: it.GetSubject(), Context: it.GetContext(),
		})
	}
	resp, err := x.p.CheckBulkPermissions(ctx, in)
	if err != nil {
		return nil, err
	}
	out := &v1.BulkCheckPermissionResponse{CheckedAt: resp.GetCheckedAt()}
	for i, pair := range resp.GetPairs() {
		bp := &v1.BulkCheckPermissionPair{Request: req.GetItems()[i]}
		if e := pair.GetError(); e != nil {
			bp.Response = &v1.BulkCheckPermissionPair_Error{Error: e}
		} else {
			bp.Response = &v1.BulkCheckPermissionPair_Item{Item: &v1.BulkCheckPermissionResponseItem{
				Permissionship: pair.GetItem().GetPermissionship(), PartialCaveatInfo: pair.GetItem().GetPartialCaveatInfo(),
			}}
		}
		out.Pairs = append(out.Pairs, bp)
	}
	return out, nil
}

func experimentalCall(call, instead string) error {
	return status.Errorf(codes.Unimplemented, "authzed.api.v1.ExperimentalService/%s is not supported by Pemba; use %s (docs/compat.md)", call, instead)
}

// ExperimentalReflectSchema is refused: SchemaService.ReflectSchema.
func (x *experimental) ExperimentalReflectSchema(context.Context, *v1.ExperimentalReflectSchemaRequest) (*v1.ExperimentalReflectSchemaResponse, error) {
	return nil, experimentalCall("ExperimentalReflectSchema", "SchemaService.ReflectSchema")
}

// ExperimentalComputablePermissions is refused:
// SchemaService.ComputablePermissions.
func (x *experimental) ExperimentalComputablePermissions(context.Context, *v1.ExperimentalComputablePermissionsRequest) (*v1.ExperimentalComputablePermissionsResponse, error) {
	return nil, experimentalCall("ExperimentalComputablePermissions", "SchemaService.ComputablePermissions")
}

// ExperimentalDependentRelations is refused:
// SchemaService.DependentRelations.
func (x *experimental) ExperimentalDependentRelations(context.Context, *v1.ExperimentalDependentRelationsRequest) (*v1.ExperimentalDependentRelationsResponse, error) {
	return nil, experimentalCall("ExperimentalDependentRelations", "SchemaService.DependentRelations")
}

// ExperimentalDiffSchema is refused: SchemaService.DiffSchema.
func (x *experimental) ExperimentalDiffSchema(context.Context, *v1.ExperimentalDiffSchemaRequest) (*v1.ExperimentalDiffSchemaResponse, error) {
	return nil, experimentalCall("ExperimentalDiffSchema", "SchemaService.DiffSchema")
}

// ExperimentalRegisterRelationshipCounter is refused: Pemba keeps no
// relationship counters.
func (x *experimental) ExperimentalRegisterRelationshipCounter(context.Context, *v1.ExperimentalRegisterRelationshipCounterRequest) (*v1.ExperimentalRegisterRelationshipCounterResponse, error) {
	return nil, experimentalCall("ExperimentalRegisterRelationshipCounter", "ReadRelationships and count (Pemba keeps no counters)")
}

// ExperimentalCountRelationships is refused: Pemba keeps no relationship
// counters.
func (x *experimental) ExperimentalCountRelationships(context.Context, *v1.ExperimentalCountRelationshipsRequest) (*v1.ExperimentalCountRelationshipsResponse, error) {
	return nil, experimentalCall("ExperimentalCountRelationships", "ReadRelationships and count (Pemba keeps no counters)")
}

// ExperimentalUnregisterRelationshipCounter is refused: Pemba keeps no
// relationship counters.
func (x *experimental) ExperimentalUnregisterRelationshipCounter(context.Context, *v1.ExperimentalUnregisterRelationshipCounterRequest) (*v1.ExperimentalUnregisterRelationshipCounterResponse, error) {
	return nil, experimentalCall("ExperimentalUnregisterRelationshipCounter", "ReadRelationships and count (Pemba keeps no counters)")
}
