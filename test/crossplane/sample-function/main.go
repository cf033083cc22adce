// A stand-in for a platform team's own composition function, for the Crossplane-in-the-loop tests
// and the demo: it composes the credentials Secret of a PostgresqlInstance in the instance's
// namespace, as a real provider would, so the sync has something to bring to the app cluster.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"

	"github.com/crossplane/function-sdk-go"
	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
	"github.com/crossplane/function-sdk-go/request"
	"github.com/crossplane/function-sdk-go/resource"
	"github.com/crossplane/function-sdk-go/resource/composed"
	"github.com/crossplane/function-sdk-go/response"
)

type credentialsFunction struct {
	fnv1.UnimplementedFunctionRunnerServiceServer
}

func (credentialsFunction) RunFunction(_ context.Context, req *fnv1.RunFunctionRequest) (*fnv1.RunFunctionResponse, error) {
	rsp := response.To(req, response.DefaultTTL)
	xr, err := request.GetObservedCompositeResource(req)
	if err != nil {
		response.Fatal(rsp, err)
		return rsp, nil
	}
	name, namespace := xr.Resource.GetName(), xr.Resource.GetNamespace()
	// deterministic, so every reconcile desires the same Secret
	sum := sha256.Sum256([]byte(namespace + "/" + name + "/" + string(xr.Resource.GetUID())))
	secret := composed.New()
	secret.SetAPIVersion("v1")
	secret.SetKind("Secret")
	secret.SetName(name + "-credentials")
	secret.SetNamespace(namespace)
	_ = secret.SetValue("stringData", map[string]any{
		"host":     fmt.Sprintf("%s.%s.postgres.example", name, namespace),
		"username": "app",
		"password": hex.EncodeToString(sum[:12]),
	})
	desired, err := request.GetDesiredComposedResources(req)
	if err != nil {
		response.Fatal(rsp, err)
		return rsp, nil
	}
	observed, err := request.GetObservedComposedResources(req)
	if err != nil {
		response.Fatal(rsp, err)
		return rsp, nil
	}
	ready := resource.ReadyUnspecified
	if _, ok := observed["credentials"]; ok {
		ready = resource.ReadyTrue
	}
	desired["credentials"] = &resource.DesiredComposed{Resource: secret, Ready: ready}
	if err := response.SetDesiredComposedResources(rsp, desired); err != nil {
		response.Fatal(rsp, err)
	}
	return rsp, nil
}

func main() {
	address := flag.String("address", "127.0.0.1:9443", "host:port to serve gRPC on")
	certs := flag.String("tls-certs-dir", "", "folder with tls.crt, tls.key and ca.crt (mTLS)")
	flag.Parse()
	err := function.Serve(credentialsFunction{},
		function.Listen("tcp", *address),
		function.MTLSCertificates(*certs),
		// no metrics listener: its default is every interface
		func(o *function.ServeOptions) error { o.MetricsAddress = ""; return nil },
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
