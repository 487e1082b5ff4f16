package sysmem

import (
	"io/fs"
	"testing"
)

func TestLimit(t *testing.T) {
	const meminfo = "MemTotal:       16318508 kB\nMemFree:         1000000 kB\n"
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  int64
		ok    bool
	}{
		{"machine only", map[string]string{"/proc/meminfo": meminfo}, 16318508 << 10, true},
		{"cgroup v2 limit below the machine", map[string]string{"/proc/meminfo": meminfo, "/sys/fs/cgroup/memory.max": "2147483648\n"}, 2 << 30, true},
		{"cgroup v2 without a limit", map[string]string{"/proc/meminfo": meminfo, "/sys/fs/cgroup/memory.max": "max\n"}, 16318508 << 10, true},
		{"cgroup v1 without a limit", map[string]string{"/proc/meminfo": meminfo, "/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n"}, 16318508 << 10, true},
		{"cgroup v1 limit", map[string]string{"/proc/meminfo": meminfo, "/sys/fs/cgroup/memory/memory.limit_in_bytes": "536870912"}, 512 << 20, true},
		{"cgroup limit above the machine", map[string]string{"/proc/meminfo": meminfo, "/sys/fs/cgroup/memory.max": "68719476736"}, 16318508 << 10, true},
		{"nothing readable", map[string]string{}, 0, false},
		{"garbage", map[string]string{"/proc/meminfo": "MemTotal: lots kB\n", "/sys/fs/cgroup/memory.max": "-1"}, 0, false},
		{"meminfo in other units", map[string]string{"/proc/meminfo": "MemTotal: 16 GB\n"}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := limit(func(name string) ([]byte, error) {
				if s, found := tc.files[name]; found {
					return []byte(s), nil
				}
				return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
			})
			if got != tc.want || ok != tc.ok {
				t.Errorf("limit = %d, %v; want %d, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
	// The real files: whatever they say, never a negative or zero limit
	// reported as known.
	if n, ok := Limit(); ok && n <= 0 {
		t.Errorf("Limit() = %d, true", n)
	}
}
