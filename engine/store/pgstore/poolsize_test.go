package pgstore

import "testing"

func TestPoolSize(t *testing.T) {
	tests := []struct {
		name    string
		uri     string
		fromURI int32
		opt     int32
		want    int32
	}{
		{"default", "postgres://db/pemba", 4, 0, DefaultMaxConns()},
		{"from the URI", "postgres://db/pemba?pool_max_conns=3", 3, 0, 3},
		{"keyword form", "host=db pool_max_conns=5", 5, 0, 5},
		{"the option wins", "postgres://db/pemba?pool_max_conns=3", 3, 9, 9},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := poolSize(tc.uri, tc.fromURI, tc.opt); got != tc.want {
				t.Errorf("poolSize = %d, want %d", got, tc.want)
			}
		})
	}
	if DefaultMaxConns() < 16 {
		t.Errorf("DefaultMaxConns() = %d, want at least 16", DefaultMaxConns())
	}
}
