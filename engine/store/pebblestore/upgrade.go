package pebblestore

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/pemba-authz/pemba/engine/store"
)

// Directories beside dir used while upgrading it to the format 3 comparer.
const (
	upgradeSuffix = ".format3-upgrade" // the copy being written
	oldSuffix     = ".format2-old"     // the old directory, until removed
)

// upgradeComparer turns a directory written under Pebble's default
// comparer (formats 1 and 2) into one under comparer (format 3). Pebble
// records its comparer in the directory and refuses another, and the
// bloom filters that format 3 adds need every sstable rewritten, so the
// upgrade copies every key, in order, into a new directory beside dir and
// then swaps the two:
//
//	dir + ".format3-upgrade"   the copy, renamed to dir once complete
//	dir + ".format2-old"       the old directory, removed after the swap
//
// A crash at any step leaves a state this function recognises on the next
// Open: a copy beside an intact dir is partial and is discarded; a copy
// with no dir was complete (it is renamed only after it is synced) and
// takes dir's place; an old directory beside dir is removed. The copy
// needs as much free space as the store uses.
func upgradeComparer(dir string, opts Options) error {
	fs := opts.FS
	next, old := dir+upgradeSuffix, dir+oldSuffix
	switch {
	case exists(fs, next) && exists(fs, dir):
		if err := fs.RemoveAll(next); err != nil {
			return fmt.Errorf("pebblestore: remove a partial upgrade copy: %w", err)
		}
	case exists(fs, next):
		if err := fs.Rename(next, dir); err != nil {
			return fmt.Errorf("pebblestore: finish an interrupted upgrade: %w", err)
		}
	}
	if exists(fs, old) && exists(fs, dir) {
		if err := fs.RemoveAll(old); err != nil {
			return fmt.Errorf("pebblestore: remove the directory an upgrade replaced: %w", err)
		}
	}
	name, err := dirComparer(dir, fs)
	if err != nil || name == "" || name == comparerName {
		// A new or missing directory, or already format 3; Open reports
		// any other problem with it.
		return err
	}
	if name != pebble.DefaultComparer.Name {
		return fmt.Errorf("%w: Pebble comparer %q", ErrNotPemba, name)
	}
	n, err := copyUpgrade(dir, next, opts)
	if err != nil {
		if errors.Is(err, ErrNotPemba) {
			return errors.Join(err, fs.RemoveAll(next))
		}
		return errors.Join(fmt.Errorf("pebblestore: upgrade %s to format %d: %w", dir, formatVersion, err), fs.RemoveAll(next))
	}
	if err := fs.Rename(dir, old); err != nil {
		return fmt.Errorf("pebblestore: upgrade %s: %w", dir, err)
	}
	if err := fs.Rename(next, dir); err != nil {
		return fmt.Errorf("pebblestore: upgrade %s: %w", dir, err)
	}
	if err := fs.RemoveAll(old); err != nil {
		return fmt.Errorf("pebblestore: upgrade %s: remove the old directory: %w", dir, err)
	}
	opts.Logger.Info("pebblestore: upgraded the data directory to format 3 (bloom filters over tuple keys)", "dir", dir, "keys", n)
	return nil
}

// copyUpgrade copies every key of the format 1 or 2 store in dir into a
// new format 3 store in next, and returns how many it copied.
func copyUpgrade(dir, next string, opts Options) (int, error) {
	sopts := pebbleOptions(opts, pebble.DefaultComparer)
	sopts.ReadOnly = true
	src, err := pebble.Open(dir, sopts)
	sopts.Cache.Unref()
	if err != nil {
		return 0, err
	}
	defer src.Close()
	if err := checkLegacy(src); err != nil {
		return 0, err
	}
	dopts := pebbleOptions(opts, comparer)
	dst, err := pebble.Open(next, dopts)
	dopts.Cache.Unref()
	if err != nil {
		return 0, err
	}
	n, err := copyKeys(src, dst)
	return n, errors.Join(err, dst.Close())
}

// checkLegacy refuses to upgrade a database that is not a Pemba store of
// format 1 or 2, before anything is written.
func checkLegacy(db *pebble.DB) error {
	v, closer, err := db.Get(keyFormat)
	if errors.Is(err, pebble.ErrNotFound) {
		it, err := db.NewIter(nil)
		if err != nil {
			return err
		}
		nonEmpty := it.First()
		if err := errors.Join(it.Error(), it.Close()); err != nil {
			return err
		}
		if nonEmpty {
			return fmt.Errorf("%w: no format version key", ErrNotPemba)
		}
		return nil
	}
	if err != nil {
		return err
	}
	x, n := binary.Uvarint(v)
	closer.Close()
	if n <= 0 || x == 0 || x >= 3 {
		return fmt.Errorf("format %d under Pebble's default comparer: %w", x, store.ErrCorrupt)
	}
	return nil
}

// copyKeys copies src's keys into dst; format 2 becomes 3, format 1 stays
// 1 so that load still builds the expiry index.
func copyKeys(src, dst *pebble.DB) (int, error) {
	it, err := src.NewIter(nil)
	if err != nil {
		return 0, err
	}
	defer it.Close()
	b := dst.NewBatch()
	defer func() { b.Close() }()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		val, err := it.ValueAndErr()
		if err != nil {
			return n, err
		}
		if string(it.Key()) == string(keyFormat) {
			if x, _ := binary.Uvarint(val); x == 2 {
				val = binary.AppendUvarint(nil, formatVersion)
			}
		}
		_ = b.Set(it.Key(), val, nil)
		n++
		if b.Len() >= importBatchBytes {
			if err := b.Commit(pebble.NoSync); err != nil {
				return n, err
			}
			b.Reset()
		}
	}
	if err := it.Error(); err != nil {
		return n, err
	}
	// The synced commit makes the earlier batches durable too.
	return n, b.Commit(pebble.Sync)
}

// dirComparer returns the name of the comparer the Pebble database in dir
// was last opened with, from its OPTIONS file; "" when dir holds no
// database (or no OPTIONS file yet).
func dirComparer(dir string, fs vfs.FS) (string, error) {
	if !exists(fs, dir) {
		return "", nil
	}
	desc, err := pebble.Peek(dir, fs)
	if err != nil {
		return "", fmt.Errorf("pebblestore: open %s: %w", dir, err)
	}
	if !desc.Exists || desc.OptionsFilename == "" {
		return "", nil
	}
	f, err := fs.Open(desc.OptionsFilename)
	if err != nil {
		return "", fmt.Errorf("pebblestore: open %s: %w", dir, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "comparer="); ok {
			return v, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("pebblestore: read %s: %w", desc.OptionsFilename, err)
	}
	return "", nil
}

func exists(fs vfs.FS, path string) bool {
	_, err := fs.Stat(path)
	return err == nil || !errors.Is(err, os.ErrNotExist)
}
