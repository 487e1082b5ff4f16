package server

import (
	"errors"
	"fmt"
	"io"

	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// backupChunkBytes is the size of one BackupChunk's data: well under
// MaxSendMsgBytes.
const backupChunkBytes = 1 << 20

// backups implements pb.BackupServiceServer.
type backups struct {
	pb.UnimplementedBackupServiceServer
	s *Server
}

// Backup takes a backup of the datastore (engine.Backup) and streams its
// manifest and then its files.
func (b *backups) Backup(_ *pb.BackupRequest, stream pb.BackupService_BackupServer) (err error) {
	// The interceptors let only admin keys without a tenant through
	// (scope.go).
	ctx := stream.Context()
	bk, err := b.s.eng.Backup(ctx)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, bk.Close()) }()
	if err := stream.Send(&pb.BackupResponse{Part: &pb.BackupResponse_Manifest{Manifest: manifestToProto(bk.Manifest)}}); err != nil {
		return err
	}
	buf := make([]byte, backupChunkBytes)
	for _, f := range bk.Manifest.Files {
		if err := sendFile(stream, bk, f.Name, buf); err != nil {
			return err
		}
	}
	return nil
}

// sendFile streams one file of bk in chunks.
func sendFile(stream pb.BackupService_BackupServer, bk *engine.Backup, name string, buf []byte) error {
	r, err := bk.Open(name)
	if err != nil {
		return err
	}
	defer r.Close()
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if err := stream.Send(&pb.BackupResponse{Part: &pb.BackupResponse_Chunk{Chunk: &pb.BackupChunk{File: name, Data: buf[:n]}}}); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("server: backup: read %s: %w", name, err)
		}
	}
}

func manifestToProto(m engine.BackupManifest) *pb.BackupManifest {
	out := &pb.BackupManifest{
		Version:   uint32(m.Version),
		Kind:      m.Kind,
		Format:    uint32(m.Format),
		StoreId:   m.StoreID,
		Revision:  uint64(m.Revision),
		Zookie:    zookieToProto(m.Zookie),
		Schema:    m.Schema,
		CreatedAt: timestamppb.New(m.Created),
	}
	for _, f := range m.Files {
		out.Files = append(out.Files, &pb.BackupFile{Name: f.Name, Size: f.Size, Sha256: f.SHA256})
	}
	return out
}
