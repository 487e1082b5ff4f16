package engine

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pemba-authz/pemba/engine/store"
	"github.com/pemba-authz/pemba/engine/store/backend"
)

// A backup is a directory: BackupManifestFile, and the datastore's files
// under BackupDataDir. The manifest names the storage format, the store
// and its head revision (with the zookie that names it), the schema in
// force, and every file with its size and SHA-256.
const (
	// BackupManifestFile is the manifest's name inside a backup
	// directory. It is written last: a directory without it is not a
	// backup.
	BackupManifestFile = "manifest.json"
	// BackupDataDir is the directory, inside a backup directory, that
	// holds the datastore's files.
	BackupDataDir = "data"
	// BackupVersion is the version of the manifest this binary writes
	// and reads.
	BackupVersion = 1
)

// BackupManifest describes a backup (BackupManifestFile holds it as
// JSON).
type BackupManifest struct {
	// Version is the manifest's own version, BackupVersion.
	Version int `json:"version"`
	// Kind is the datastore kind the files belong to ("pebble").
	Kind string `json:"kind"`
	// Format is the storage format of the files (StorageFormats).
	Format int `json:"format"`
	// StoreID is the ID of the backed-up datastore; the restored one
	// keeps it, so zookies minted by the original stay valid.
	StoreID string `json:"store_id"`
	// Revision is the head revision of the backup, and Zookie the zookie
	// that names it: every read at that zookie answers alike on the
	// original (within its GC window) and on the restored datastore.
	Revision Revision `json:"revision"`
	Zookie   string   `json:"zookie"`
	// Schema is the schema text in force at Revision ("" when none).
	Schema string `json:"schema"`
	// Created is when the backup was taken, UTC.
	Created time.Time `json:"created"`
	// Files are the datastore's files, sorted by name.
	Files []BackupFile `json:"files"`
}

// BackupFile is one file of a backup.
type BackupFile struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // lower-case hex
}

// Backup is a consistent copy of the engine's datastore, taken by
// Engine.Backup while it serves. Read its files with Open; Close removes
// the copy.
type Backup struct {
	// Manifest describes the copy.
	Manifest BackupManifest
	cp       *store.Checkpoint
}

// Backup takes a consistent copy of the datastore without pausing reads
// (Pebble: a checkpoint; writers wait for one flush of the write-ahead
// log) and describes it in a manifest, reading every file once for its
// checksum. Datastores that cannot copy themselves fail with
// ErrBackupUnsupported (PostgreSQL: use pg_dump, see docs/operations.md).
func (e *Engine) Backup(ctx context.Context) (*Backup, error) {
	c, ok := e.st.(store.Checkpointer)
	if !ok {
		return nil, fmt.Errorf("%w: the %s datastore (back up PostgreSQL with pg_dump)", ErrBackupUnsupported, e.st.Kind())
	}
	cp, err := c.Checkpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("engine: backup: %w", err)
	}
	b := &Backup{cp: cp, Manifest: BackupManifest{
		Version:  BackupVersion,
		Kind:     e.st.Kind(),
		Format:   cp.Format,
		StoreID:  cp.ID,
		Revision: cp.Revision,
		Zookie:   e.zookieOf(cp.Revision),
		Schema:   cp.Schema,
		Created:  e.now().UTC(),
	}}
	for _, name := range cp.Files {
		f, err := b.Open(name)
		if err != nil {
			return nil, errors.Join(err, b.Close())
		}
		h := sha256.New()
		n, err := io.Copy(h, f)
		f.Close()
		if err != nil {
			return nil, errors.Join(fmt.Errorf("engine: backup: read %s: %w", name, err), b.Close())
		}
		b.Manifest.Files = append(b.Manifest.Files, BackupFile{Name: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))})
	}
	return b, nil
}

// Open opens one of the files the manifest lists.
func (b *Backup) Open(name string) (io.ReadCloser, error) {
	f, err := b.cp.OpenFile(name)
	if err != nil {
		return nil, fmt.Errorf("engine: backup: %w", err)
	}
	return f, nil
}

// Close removes the copy.
func (b *Backup) Close() error { return b.cp.Close() }

// Save writes the backup into dir (created; it must not exist or be
// empty), verifying each file as it is written, the manifest last.
func (b *Backup) Save(dir string) error {
	w, err := NewBackupWriter(dir, b.Manifest)
	if err != nil {
		return err
	}
	for _, f := range b.Manifest.Files {
		r, err := b.Open(f.Name)
		if err != nil {
			return err
		}
		_, err = io.Copy(w.File(f.Name), r)
		r.Close()
		if err != nil {
			return fmt.Errorf("engine: backup: copy %s: %w", f.Name, err)
		}
	}
	return w.Finish()
}

// BackupWriter writes a backup directory from a manifest and the contents
// of its files, as a client receives them (in any order of files, each
// file's bytes in order). Finish verifies every file against the manifest
// and writes the manifest last.
type BackupWriter struct {
	dir   string
	m     BackupManifest
	files map[string]*os.File
	err   error
}

// NewBackupWriter creates dir (and BackupDataDir inside it) for the
// backup m describes. dir must not exist or be empty.
func NewBackupWriter(dir string, m BackupManifest) (*BackupWriter, error) {
	if err := checkManifest(m); err != nil {
		return nil, err
	}
	if err := emptyDir(dir); err != nil {
		return nil, fmt.Errorf("engine: backup to %s: %w", dir, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, BackupDataDir), 0o750); err != nil {
		return nil, fmt.Errorf("engine: backup: %w", err)
	}
	w := &BackupWriter{dir: dir, m: m, files: map[string]*os.File{}}
	for _, f := range m.Files {
		fh, err := os.OpenFile(filepath.Join(dir, BackupDataDir, f.Name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("engine: backup: %w", err), w.closeAll())
		}
		w.files[f.Name] = fh
	}
	return w, nil
}

// File returns the writer of the named file; writing a file the manifest
// does not list fails.
func (w *BackupWriter) File(name string) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		if w.err != nil {
			return 0, w.err
		}
		f, ok := w.files[name]
		if !ok {
			w.err = fmt.Errorf("%w: file %q is not in the manifest", ErrBackupInvalid, name)
			return 0, w.err
		}
		n, err := f.Write(p)
		if err != nil {
			w.err = fmt.Errorf("engine: backup: write %s: %w", name, err)
		}
		return n, w.err
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// Finish syncs and closes the files, verifies them against the manifest
// and writes the manifest.
func (w *BackupWriter) Finish() error {
	for _, f := range w.files {
		if err := f.Sync(); err != nil && w.err == nil {
			w.err = fmt.Errorf("engine: backup: %w", err)
		}
	}
	if err := errors.Join(w.err, w.closeAll()); err != nil {
		return err
	}
	for _, f := range w.m.Files {
		if err := verifyFile(filepath.Join(w.dir, BackupDataDir), f, nil); err != nil {
			return err
		}
	}
	data, err := json.MarshalIndent(w.m, "", "  ")
	if err != nil {
		return fmt.Errorf("engine: backup manifest: %w", err)
	}
	return writeFileSync(filepath.Join(w.dir, BackupManifestFile), append(data, '\n'))
}

// Abort closes the files of a backup that will not be finished; the
// caller removes the directory.
func (w *BackupWriter) Abort() error { return w.closeAll() }

func (w *BackupWriter) closeAll() error {
	var errs []error
	for name, f := range w.files {
		errs = append(errs, f.Close())
		delete(w.files, name)
	}
	return errors.Join(errs...)
}

// ReadBackupManifest reads and checks the manifest of the backup in dir:
// its version, and a datastore kind and storage format this binary can
// restore. It does not read the files (VerifyBackup does).
func ReadBackupManifest(dir string) (BackupManifest, error) {
	var m BackupManifest
	data, err := os.ReadFile(filepath.Join(dir, BackupManifestFile))
	if errors.Is(err, os.ErrNotExist) {
		return m, fmt.Errorf("%w: %s has no %s (not a backup, or one that did not finish)", ErrBackupInvalid, dir, BackupManifestFile)
	}
	if err != nil {
		return m, fmt.Errorf("engine: read backup manifest: %w", err)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("%w: %s: %v", ErrBackupInvalid, filepath.Join(dir, BackupManifestFile), err)
	}
	return m, checkManifest(m)
}

// checkManifest refuses a manifest this binary cannot restore.
func checkManifest(m BackupManifest) error {
	if m.Version != BackupVersion {
		return fmt.Errorf("%w: manifest version %d; this pemba reads version %d", ErrBackupFormat, m.Version, BackupVersion)
	}
	if m.Kind != StorePebble {
		return fmt.Errorf("%w: a backup of a %q datastore; pemba restores pebble backups", ErrBackupFormat, m.Kind)
	}
	if cur := backend.Formats()[m.Kind]; m.Format < 1 || m.Format > cur {
		return fmt.Errorf("%w: the backup is in %s storage format %d, this pemba reads formats 1 to %d: restore it with the pemba version that took it, or a newer one", ErrBackupFormat, m.Kind, m.Format, cur)
	}
	if m.StoreID == "" {
		return fmt.Errorf("%w: the manifest names no store id", ErrBackupInvalid)
	}
	seen := map[string]bool{}
	for _, f := range m.Files {
		if f.Name == "" || f.Name != filepath.Base(f.Name) || f.Name == "." || f.Name == ".." || strings.ContainsAny(f.Name, `/\`) {
			return fmt.Errorf("%w: bad file name %q in the manifest", ErrBackupInvalid, f.Name)
		}
		if seen[f.Name] {
			return fmt.Errorf("%w: file %q listed twice in the manifest", ErrBackupInvalid, f.Name)
		}
		seen[f.Name] = true
		if f.Size < 0 || len(f.SHA256) != 2*sha256.Size {
			return fmt.Errorf("%w: file %q has a bad size or checksum in the manifest", ErrBackupInvalid, f.Name)
		}
	}
	return nil
}

// VerifyBackup reads the backup in dir and checks it whole: the manifest
// (ReadBackupManifest) and every file's presence, size and SHA-256, and
// that no other file is there. Errors name the file.
func VerifyBackup(dir string) (BackupManifest, error) {
	m, err := ReadBackupManifest(dir)
	if err != nil {
		return m, err
	}
	data := filepath.Join(dir, BackupDataDir)
	for _, f := range m.Files {
		if err := verifyFile(data, f, nil); err != nil {
			return m, err
		}
	}
	entries, err := os.ReadDir(data)
	if err != nil {
		return m, fmt.Errorf("%w: %v", ErrBackupInvalid, err)
	}
	for _, e := range entries {
		if !slices.ContainsFunc(m.Files, func(f BackupFile) bool { return f.Name == e.Name() }) {
			return m, fmt.Errorf("%w: %s is not in the manifest", ErrBackupInvalid, filepath.Join(data, e.Name()))
		}
	}
	return m, nil
}

// verifyFile checks the file f in dir against its size and checksum,
// copying its bytes to copyTo when that is not nil.
func verifyFile(dir string, f BackupFile, copyTo io.Writer) error {
	path := filepath.Join(dir, f.Name)
	r, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %s is missing", ErrBackupInvalid, path)
	}
	if err != nil {
		return fmt.Errorf("engine: verify backup: %w", err)
	}
	defer r.Close()
	h := sha256.New()
	var w io.Writer = h
	if copyTo != nil {
		w = io.MultiWriter(h, copyTo)
	}
	n, err := io.Copy(w, r)
	if err != nil {
		return fmt.Errorf("engine: verify backup: %s: %w", path, err)
	}
	if n != f.Size {
		return fmt.Errorf("%w: %s has %d bytes, the manifest says %d", ErrBackupInvalid, path, n, f.Size)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != f.SHA256 {
		return fmt.Errorf("%w: %s has SHA-256 %s, the manifest says %s (the file is damaged)", ErrBackupInvalid, path, sum, f.SHA256)
	}
	return nil
}

// RestoreBackup restores the backup in from into dataDir, a new Pebble
// data directory (absent or empty). It checks the manifest first, copies
// the files into a directory beside dataDir verifying each one's size and
// checksum as it goes, and only when all are good moves that directory
// into place. It then opens the restored datastore and checks its ID,
// head revision and schema against the manifest; on any failure nothing
// is left at dataDir. Errors of a bad backup wrap ErrBackupInvalid or
// ErrBackupFormat and name the file.
func RestoreBackup(ctx context.Context, from, dataDir string) (BackupManifest, error) {
	m, err := ReadBackupManifest(from)
	if err != nil {
		return m, err
	}
	if err := emptyDir(dataDir); err != nil {
		return m, fmt.Errorf("engine: restore into %s: %w", dataDir, err)
	}
	parent := filepath.Dir(filepath.Clean(dataDir))
	if err := os.MkdirAll(parent, 0o750); err != nil {
		return m, fmt.Errorf("engine: restore: %w", err)
	}
	var raw [8]byte
	_, _ = rand.Read(raw[:])
	tmp := filepath.Join(parent, "."+filepath.Base(dataDir)+".restoring-"+hex.EncodeToString(raw[:]))
	if err := os.Mkdir(tmp, 0o750); err != nil {
		return m, fmt.Errorf("engine: restore: %w", err)
	}
	placed := false
	defer func() {
		if !placed {
			os.RemoveAll(tmp)
		}
	}()
	src := filepath.Join(from, BackupDataDir)
	for _, f := range m.Files {
		if err := copyVerified(src, tmp, f); err != nil {
			return m, err
		}
	}
	if err := syncDir(tmp); err != nil {
		return m, err
	}
	// rename(2) replaces an empty directory.
	if err := os.Rename(tmp, dataDir); err != nil {
		return m, fmt.Errorf("engine: restore: move into place: %w", err)
	}
	placed = true
	if err := syncDir(parent); err != nil {
		return m, errors.Join(err, os.RemoveAll(dataDir))
	}
	if err := checkRestored(ctx, dataDir, m); err != nil {
		return m, errors.Join(err, os.RemoveAll(dataDir))
	}
	return m, nil
}

// copyVerified copies the file f from src into dst, checking its size and
// checksum, and syncs the copy.
func copyVerified(src, dst string, f BackupFile) error {
	out, err := os.OpenFile(filepath.Join(dst, f.Name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("engine: restore: %w", err)
	}
	err = verifyFile(src, f, out)
	if err == nil {
		err = out.Sync()
	}
	return errors.Join(err, out.Close())
}

// checkRestored opens the datastore restored in dir and compares it with
// the manifest.
func checkRestored(ctx context.Context, dir string, m BackupManifest) error {
	st, err := backend.Open(ctx, backend.Options{Kind: m.Kind, Dir: dir, Pebble: backend.PebbleOptions{GCInterval: -1}})
	if err != nil {
		return fmt.Errorf("engine: restore: open the restored datastore: %w", err)
	}
	err = func() error {
		if st.ID() != m.StoreID {
			return fmt.Errorf("%w: the restored datastore has id %s, the manifest says %s", ErrBackupInvalid, st.ID(), m.StoreID)
		}
		head, err := st.HeadRevision(ctx)
		if err != nil {
			return err
		}
		if head != m.Revision {
			return fmt.Errorf("%w: the restored datastore is at revision %d, the manifest says %d", ErrBackupInvalid, head, m.Revision)
		}
		r, err := st.Snapshot(ctx, head)
		if err != nil {
			return err
		}
		text, _, err := r.ReadSchema(ctx)
		if err != nil {
			return err
		}
		if text != m.Schema {
			return fmt.Errorf("%w: the restored datastore's schema differs from the manifest's", ErrBackupInvalid)
		}
		return nil
	}()
	if err != nil {
		err = fmt.Errorf("engine: restore: check the restored datastore: %w", err)
	}
	return errors.Join(err, st.Close())
}

// emptyDir reports an error unless dir is absent or an empty directory.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("%w: the directory is not empty", ErrBackupTargetNotEmpty)
	}
	return nil
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if err := errors.Join(err, f.Close()); err != nil {
		return fmt.Errorf("engine: write %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("engine: sync %s: %w", dir, err)
	}
	err = d.Sync()
	if err := errors.Join(err, d.Close()); err != nil {
		return fmt.Errorf("engine: sync %s: %w", dir, err)
	}
	return nil
}
