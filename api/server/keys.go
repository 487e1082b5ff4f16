package server

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// ParseKeys reads preshared keys, one "name secret" pair per line, as
// pemba serve's -keys-file holds them; a third field "admin" makes the
// key an admin key (Key.Admin). Blank lines and lines starting with "#"
// are skipped. Errors name the line, never the secret.
func ParseKeys(r io.Reader) ([]Key, error) {
	var keys []Key
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Fields(text)
		if len(fields) != 2 && (len(fields) != 3 || fields[2] != "admin") {
			return nil, fmt.Errorf("server: keys line %d: want \"name secret\" or \"name secret admin\", found %d fields", line, len(fields))
		}
		keys = append(keys, Key{Name: fields[0], Secret: fields[1], Admin: len(fields) == 3})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("server: read keys: %w", err)
	}
	return keys, nil
}
