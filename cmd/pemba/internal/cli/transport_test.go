package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	pb "github.com/pemba-authz/pemba/api/pembav1"
	"github.com/pemba-authz/pemba/api/server"
)

// selfSigned returns a TLS certificate for 127.0.0.1 and its PEM.
func selfSigned(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "pemba test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestTLS(t *testing.T) {
	cert, caPEM := selfSigned(t)
	addr := startServerConfig(t, server.Config{
		Keys:        []server.Key{{Name: "cli", Secret: testSecret}},
		GRPCOptions: []grpc.ServerOption{grpc.Creds(credentials.NewServerTLSFromCert(&cert))},
	})
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(t.TempDir(), "x.pem")
	if err := os.WriteFile(notPEM, []byte("nothing"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"private CA", []string{"--tls-ca", ca}, 0, ""},
		{"plaintext to a TLS server", nil, 1, "Unavailable"},
		{"system roots", []string{"--tls"}, 1, "Unavailable"},
		{"CA file without certificates", []string{"--tls-ca", notPEM}, 1, "no PEM certificates"},
		{"missing CA file", []string{"--tls-ca", filepath.Join(t.TempDir(), "none.pem")}, 1, "read --tls-ca"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"schema", "write", "-", "--token", testSecret}, tt.args...)
			r := pemba(t, addr, "definition user {}\n", args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", r.code, r.stderr, tt.code, tt.stderr)
			}
		})
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:50051": true, "localhost:1": true, "[::1]:50051": true,
		"10.0.0.1:50051": false, "authz.internal:443": false, "dns:///authz:443": false, "127.0.0.1": false,
	} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v", addr, got)
		}
	}
}

// noImport is a server without ImportRelationships: it records writes.
type noImport struct {
	pb.UnimplementedPermissionsServiceServer
	writes [][]string
}

func (s *noImport) WriteRelationships(_ context.Context, req *pb.WriteRelationshipsRequest) (*pb.WriteRelationshipsResponse, error) {
	var batch []string
	for _, u := range req.GetUpdates() {
		if u.GetOperation() != pb.RelationshipUpdate_OPERATION_TOUCH {
			batch = append(batch, "not touch")
			continue
		}
		batch = append(batch, u.GetRelationship().GetResource().GetObjectId())
	}
	s.writes = append(s.writes, batch)
	return &pb.WriteRelationshipsResponse{WrittenAt: &pb.Zookie{Token: "zk"}}, nil
}

// TestImportFallsBackToWrites: a server without ImportRelationships gets
// the file as batched TOUCH writes.
func TestImportFallsBackToWrites(t *testing.T) {
	fake := &noImport{}
	s := grpc.NewServer()
	pb.RegisterPermissionsServiceServer(s, fake)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(lis)
	defer s.Stop()
	var in strings.Builder
	in.WriteString("// a comment\n\n")
	const n = 2500
	for i := range n {
		in.WriteString("doc:d" + strings.Repeat("x", i%3) + "_" + strconv.Itoa(i) + "#viewer@user:anne\n")
	}
	r := pemba(t, lis.Addr().String(), in.String(), "relationship", "import", "-")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "zk" || !strings.Contains(r.stderr, "2500 relationships imported") {
		t.Fatalf("import: %+v", r)
	}
	total := 0
	for _, b := range fake.writes {
		if len(b) > maxBatch {
			t.Errorf("a write of %d updates", len(b))
		}
		for _, id := range b {
			if id == "not touch" {
				t.Error("fallback write is not TOUCH")
			}
		}
		total += len(b)
	}
	if total != n || len(fake.writes) != 3 {
		t.Errorf("%d relationships in %d writes, want %d in 3", total, len(fake.writes), n)
	}
}
