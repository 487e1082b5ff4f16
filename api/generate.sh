#!/bin/sh
# Regenerates the Go code in api/pembav1 from api/proto/pemba/v1/*.proto,
# and from them and the HTTP rules in api/proto/pemba/v1/http.yaml the
# HTTP/JSON gateway in api/gateway and the OpenAPI document
# api/internal/openapi/pemba.swagger.json. The generated files are
# committed; CI does not regenerate them.
#
# Needs protoc (3.21 or newer; Debian: apt-get install protobuf-compiler)
# and the plugins at the versions the committed code was made with:
#
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
#   go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
#   go install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@v2.34.0
#   go install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2@v2.34.0
#
# Run from anywhere: ./api/generate.sh (or go generate ./api/...).
set -eu
cd "$(dirname "$0")/.."
export PATH="$(go env GOPATH)/bin:$PATH"
rm -f api/pembav1/*.pb.go # doc.go is hand-written and stays
protoc \
	--proto_path=api/proto \
	--go_out=. --go_opt=module=github.com/pemba-authz/pemba \
	--go-grpc_out=. --go-grpc_opt=module=github.com/pemba-authz/pemba \
	api/proto/pemba/v1/*.proto
# The gateway and the OpenAPI document cover the public services only:
# DispatchService is the cluster's node-to-node call, and BackupService
# streams a datastore's files to `pemba backup` (gRPC only: bytes in
# chunks are no JSON resource). The gateway goes to
# its own package, api/gateway (standalone: it imports pembav1), so that
# importers of pembav1 (the Go client) do not link grpc-gateway.
# Every file but dispatch.proto and backup.proto: a new public service in a new file joins
# the gateway without editing this script.
public=$(ls api/proto/pemba/v1/*.proto | grep -v -e /dispatch.proto -e /backup.proto)
gw=$(mktemp -d)
trap 'rm -rf "$gw"' EXIT
protoc \
	--proto_path=api/proto \
	--grpc-gateway_out="$gw" \
	--grpc-gateway_opt=paths=source_relative,standalone=true,grpc_api_configuration=api/proto/pemba/v1/http.yaml \
	--openapiv2_out=api/internal/openapi \
	--openapiv2_opt=allow_merge=true,merge_file_name=pemba,grpc_api_configuration=api/proto/pemba/v1/http.yaml \
	--openapiv2_opt=openapi_configuration=api/internal/openapi/config.yaml \
	$public
rm -f api/gateway/*.pb.gw.go # doc.go is hand-written and stays
for f in "$gw"/pemba/v1/*.pb.gw.go; do
	# The package clause and its comment name the protos' package; the
	# doc comment is doc.go's.
	sed -e '/^\/\*$/,/^\*\/$/d' -e 's/^package pembav1$/package gateway/' "$f" >"api/gateway/$(basename "$f")"
done
