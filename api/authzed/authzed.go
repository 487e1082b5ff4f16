package authzed

import (
	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/pemba-authz/pemba/api/server"
	"github.com/pemba-authz/pemba/engine"
)

// Register serves authzed.api.v1's PermissionsService, SchemaService and
// WatchService over e on srv (before srv serves), beside pemba.v1 and
// behind the same interceptors, and of ExperimentalService the bulk calls
// that PermissionsService took over.
func Register(srv *server.Server, e *engine.Engine) {
	a := &api{srv: srv, eng: e}
	p := &permissions{api: a}
	srv.RegisterService(a.rewritten(&v1.PermissionsService_ServiceDesc), p)
	srv.RegisterService(a.rewritten(&v1.ExperimentalService_ServiceDesc), &experimental{p: p})
	srv.RegisterService(a.rewritten(&v1.SchemaService_ServiceDesc), &schemas{api: a})
	srv.RegisterService(a.rewritten(&v1.WatchService_ServiceDesc), &watcher{api: a})
}

// api is what the three services share.
type api struct {
	srv *server.Server
	eng *engine.Engine
}
