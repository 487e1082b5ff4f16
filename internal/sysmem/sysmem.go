// Package sysmem tells how much memory the process may use: the smaller
// of the machine's memory (/proc/meminfo) and the limit of its control
// group (cgroup v2 memory.max, or v1 memory.limit_in_bytes), so that
// defaults sized by memory fit a container as well as a machine. Linux
// only; elsewhere it knows nothing.
package sysmem

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
)

// Files are the paths Limit reads.
var files = []string{
	"/proc/meminfo",
	"/sys/fs/cgroup/memory.max",                   // cgroup v2
	"/sys/fs/cgroup/memory/memory.limit_in_bytes", // cgroup v1
}

// Limit returns the bytes of memory available to the process, or false
// when none of the files says.
func Limit() (int64, bool) {
	return limit(func(name string) ([]byte, error) { return os.ReadFile(name) })
}

// limit is Limit reading through read (for tests).
func limit(read func(name string) ([]byte, error)) (int64, bool) {
	var best int64
	for _, name := range files {
		b, err := read(name)
		if err != nil {
			continue // absent (another cgroup version, not Linux) or unreadable
		}
		var n int64
		var ok bool
		if strings.HasSuffix(name, "meminfo") {
			n, ok = memTotal(b)
		} else {
			n, ok = cgroupLimit(b)
		}
		if ok && (best == 0 || n < best) {
			best = n
		}
	}
	return best, best > 0
}

// memTotal reads MemTotal from /proc/meminfo ("MemTotal: 16318508 kB").
func memTotal(b []byte) (int64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == "MemTotal:" && f[2] == "kB" {
			n, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil || n <= 0 || n > 1<<53 {
				return 0, false
			}
			return n << 10, true
		}
	}
	return 0, false
}

// cgroupLimit reads a cgroup's memory limit: a byte count, or "max" (v2)
// or a huge number (v1, about 2^63 rounded to pages) for none.
func cgroupLimit(b []byte) (int64, bool) {
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n >= 1<<60 {
		return 0, false
	}
	return n, true
}
