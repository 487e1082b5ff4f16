package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/internal/progress"
)

// backupCommand is `pemba backup --to DIR`: it asks the server for a
// backup (BackupService.Backup, an admin key) and writes it into DIR,
// verifying every file against the manifest before writing the manifest
// last. A failed backup leaves no DIR behind.
func backupCommand(ctx context.Context, inv *invocation, args []string) error {
	const usage = "pemba backup --to DIR [flags]"
	fs := inv.flagSet()
	conn := inv.connFlags(fs)
	to := fs.String("to", "", "write the backup into this new (or empty) `directory`")
	pos, err := inv.parse(fs, usage, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef(usage, "unexpected arguments %q", pos)
	}
	if *to == "" {
		return usagef(usage, "give --to DIR")
	}
	if entries, err := os.ReadDir(*to); err == nil && len(entries) > 0 {
		return fmt.Errorf("--to %s: %w", *to, engine.ErrBackupTargetNotEmpty)
	}
	c, err := inv.dial(conn, usage)
	if err != nil {
		return err
	}
	defer c.Close()
	m, err := receiveBackup(ctx, c.Backup, *to, inv.env.Stderr)
	if err != nil && !errors.Is(err, engine.ErrBackupTargetNotEmpty) {
		return errors.Join(err, removeEmptied(*to))
	}
	if err != nil {
		return err
	}
	var bytes int64
	for _, f := range m.Files {
		bytes += f.Size
	}
	inv.printf("backup of %s store %s at revision %d: %d files, %d bytes, in %s\nzookie: %s\n",
		m.Kind, m.StoreID, m.Revision, len(m.Files), bytes, *to, m.Zookie)
	return nil
}

// receiveBackup streams a backup from the server into dir, showing its
// progress in bytes on progressTo.
func receiveBackup(ctx context.Context, bc pb.BackupServiceClient, dir string, progressTo io.Writer) (engine.BackupManifest, error) {
	var m engine.BackupManifest
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := bc.Backup(ctx, &pb.BackupRequest{})
	if err != nil {
		return m, err
	}
	first, err := stream.Recv()
	if err != nil {
		return m, err
	}
	pm := first.GetManifest()
	if pm == nil {
		return m, fmt.Errorf("the server sent no manifest first")
	}
	m = manifestFromProto(pm)
	w, err := engine.NewBackupWriter(dir, m)
	if err != nil {
		return m, err
	}
	var total int64
	for _, f := range m.Files {
		total += f.Size
	}
	rep := progress.New(progressTo, "backing up", progress.Options{Total: total, Unit: "bytes"})
	defer rep.Finish()
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return m, errors.Join(err, w.Abort())
		}
		ch := resp.GetChunk()
		if ch == nil {
			return m, errors.Join(fmt.Errorf("the server sent a second manifest"), w.Abort())
		}
		if _, err := w.File(ch.GetFile()).Write(ch.GetData()); err != nil {
			return m, errors.Join(err, w.Abort())
		}
		rep.Add(len(ch.GetData()))
	}
	return m, w.Finish()
}

func manifestFromProto(pm *pb.BackupManifest) engine.BackupManifest {
	m := engine.BackupManifest{
		Version:  int(pm.GetVersion()),
		Kind:     pm.GetKind(),
		Format:   int(pm.GetFormat()),
		StoreID:  pm.GetStoreId(),
		Revision: engine.Revision(pm.GetRevision()),
		Zookie:   pm.GetZookie().GetToken(),
		Schema:   pm.GetSchema(),
		Created:  pm.GetCreatedAt().AsTime(),
	}
	for _, f := range pm.GetFiles() {
		m.Files = append(m.Files, engine.BackupFile{Name: f.GetName(), Size: f.GetSize(), SHA256: f.GetSha256()})
	}
	return m
}

// removeEmptied removes what a failed backup wrote into dir (which was
// absent or empty before).
func removeEmptied(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove the unfinished backup: %w", err)
	}
	return nil
}
