#!/bin/sh
# Regenerates the Go code in api/pembav1 from api/proto/pemba/v1/*.proto.
#
# Needs protoc (3.21 or newer; Debian: apt-get install protobuf-compiler)
# and the two plugins at the versions the committed code was made with:
#
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
#   go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
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
