package server

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"testing"

	"google.golang.org/grpc/codes"

	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine/store/pebblestore"
)

// receiveBackup reads a whole Backup stream: the manifest and each
// file's bytes.
func receiveBackup(stream pb.BackupService_BackupClient) (*pb.BackupManifest, map[string][]byte, []string, error) {
	var m *pb.BackupManifest
	files := map[string][]byte{}
	var order []string
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return m, files, order, nil
		}
		if err != nil {
			return nil, nil, nil, err
		}
		switch p := resp.Part.(type) {
		case *pb.BackupResponse_Manifest:
			m = p.Manifest
		case *pb.BackupResponse_Chunk:
			if _, ok := files[p.Chunk.File]; !ok {
				order = append(order, p.Chunk.File)
			}
			files[p.Chunk.File] = append(files[p.Chunk.File], p.Chunk.Data...)
		}
	}
}

func TestBackupService(t *testing.T) {
	st, err := pebblestore.Open(t.TempDir(), pebblestore.Options{GCInterval: -1, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixtureOn(t, st, Config{Keys: []Key{
		{Name: "svc-a", Secret: secretA, Scopes: ScopeCheck | ScopeReadRelationships | ScopeWriteRelationships | ScopeReadSchema | ScopeWriteSchema | ScopeWatch},
		{Name: "acme-ops", Secret: secretB, Scopes: ScopeAdmin, Tenant: "acme/"},
		{Name: "ops", Secret: secretC, Scopes: ScopeAdmin},
	}})
	if _, err := f.schema.WriteSchema(bearer(secretC), &pb.WriteSchemaRequest{Schema: testSchema}); err != nil {
		t.Fatal(err)
	}
	client := pb.NewBackupServiceClient(f.conn)

	for name, secret := range map[string]string{"not an admin key": secretA, "a tenant's admin key": secretB} {
		t.Run(name, func(t *testing.T) {
			s, err := client.Backup(bearer(secret), &pb.BackupRequest{})
			if err == nil {
				_, _, _, err = receiveBackup(s)
			}
			wantCode(t, err, codes.PermissionDenied, ReasonPermissionDenied)
		})
	}
	t.Run("admin key", func(t *testing.T) {
		s, err := client.Backup(bearer(secretC), &pb.BackupRequest{})
		if err != nil {
			t.Fatal(err)
		}
		m, files, order, err := receiveBackup(s)
		if err != nil {
			t.Fatal(err)
		}
		if m == nil || m.Kind != "pebble" || m.Format != pebblestore.FormatVersion || m.StoreId != st.ID() || m.Schema != testSchema || m.Zookie.GetToken() == "" || m.Revision == 0 {
			t.Fatalf("manifest %v", m)
		}
		var nonEmpty []string
		for _, mf := range m.Files {
			sum := sha256.Sum256(files[mf.Name])
			if int64(len(files[mf.Name])) != mf.Size || hex.EncodeToString(sum[:]) != mf.Sha256 {
				t.Errorf("file %s: %d bytes received, manifest %d bytes %s", mf.Name, len(files[mf.Name]), mf.Size, mf.Sha256)
			}
			if mf.Size > 0 {
				nonEmpty = append(nonEmpty, mf.Name)
			}
		}
		if len(order) != len(nonEmpty) {
			t.Errorf("files streamed %v; want the manifest's non-empty files %v", order, nonEmpty)
		}
		for i := range min(len(order), len(nonEmpty)) {
			if order[i] != nonEmpty[i] {
				t.Errorf("file %d streamed is %s, manifest order says %s", i, order[i], nonEmpty[i])
			}
		}
	})
}

func TestBackupServiceUnsupported(t *testing.T) {
	f := newFixture(t, Config{})
	s, err := pb.NewBackupServiceClient(f.conn).Backup(t.Context(), &pb.BackupRequest{})
	if err == nil {
		_, _, _, err = receiveBackup(s)
	}
	wantCode(t, err, codes.FailedPrecondition, ReasonBackupUnsupported)
}
