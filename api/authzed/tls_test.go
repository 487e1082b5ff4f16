package authzed

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
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	authzedclient "github.com/authzed/authzed-go/v1"
	"github.com/authzed/grpcutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/pemba-authz/pemba/api/server"
	"github.com/pemba-authz/pemba/engine"
	"github.com/pemba-authz/pemba/engine/store/memstore"
)

// TestTLS: authzed-go's TLS options (a CA bundle and a bearer token that
// requires transport security) reach authzed.api.v1 over the server's
// TLS; a plaintext client is refused.
func TestTLS(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "pemba-test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		// Validity only needs to cover the test; the certificate's
		// check is crypto/tls's, not the answer under test.
		NotBefore:   time.Now().Add(-time.Hour),
		NotAfter:    time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}

	ctx := context.Background()
	st := memstore.New(memstore.Options{})
	defer st.Close()
	eng, err := engine.Open(ctx, st, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	srv, err := server.New(eng, server.Config{
		Keys:        []server.Key{{Name: "ci", Secret: testKey}},
		GRPCOptions: []grpc.ServerOption{grpc.Creds(credentials.NewServerTLSFromCert(&cert))},
	})
	if err != nil {
		t.Fatal(err)
	}
	Register(srv, eng)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	defer func() {
		srv.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()

	ca, err := grpcutil.WithCustomCertBytes(grpcutil.VerifyCA, certPEM)
	if err != nil {
		t.Fatal(err)
	}
	c, err := authzedclient.NewClient(lis.Addr().String(), ca, grpcutil.WithBearerToken(testKey))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: testSchema}); err != nil {
		t.Fatalf("over TLS: %v", err)
	}

	plain, err := authzedclient.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()), grpcutil.WithInsecureBearerToken(testKey))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := plain.ReadSchema(ctx, &v1.ReadSchemaRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("plaintext to a TLS server: %v, want UNAVAILABLE", err)
	}
}
