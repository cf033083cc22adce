// The export function on github.com/crossplane/function-sdk-go, for bench/function: the same
// template and RBAC as ours (src/export) for the same request, served the way a Go function
// usually is, so the benchmark compares what a Crossplane user would otherwise run.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/crossplane/function-sdk-go"
	fnv1 "github.com/crossplane/function-sdk-go/proto/v1"
	"github.com/crossplane/function-sdk-go/request"
	"github.com/crossplane/function-sdk-go/resource"
	"github.com/crossplane/function-sdk-go/response"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

type exportFunction struct {
	fnv1.UnimplementedFunctionRunnerServiceServer
}

func (exportFunction) RunFunction(_ context.Context, req *fnv1.RunFunctionRequest) (*fnv1.RunFunctionResponse, error) {
	rsp := response.To(req, response.DefaultTTL)
	xr, err := request.GetObservedCompositeResource(req)
	if err != nil {
		response.Fatal(rsp, err)
		return rsp, nil
	}
	spec, _ := xr.Resource.Object["spec"].(map[string]any)
	exp, err := parseRequest(xr.Resource.GetName(), spec)
	if err != nil {
		response.Fatal(rsp, err)
		return rsp, nil
	}
	rsp.Requirements = &fnv1.Requirements{Resources: map[string]*fnv1.ResourceSelector{
		"xrd": {
			ApiVersion: "apiextensions.crossplane.io/v2",
			Kind:       "CompositeResourceDefinition",
			Match:      &fnv1.ResourceSelector_MatchName{MatchName: exp.xrd},
		},
	}}
	found, resolved, err := request.GetRequiredResource(req, "xrd")
	if err != nil {
		response.Fatal(rsp, err)
		return rsp, nil
	}
	if !resolved || len(found) == 0 {
		return rsp, nil
	}
	x, err := parseXrd(found[0].Resource.Object)
	if err != nil {
		response.Fatal(rsp, err)
		return rsp, nil
	}
	manifests, err := buildExport(x, exp)
	if err != nil {
		response.Fatal(rsp, err)
		return rsp, nil
	}
	desired := make(map[resource.Name]*unstructured.Unstructured, len(manifests))
	for key, m := range manifests {
		desired[resource.Name(key)] = &unstructured.Unstructured{Object: m}
	}
	if err := response.SetDesiredResources(rsp, desired); err != nil {
		response.Fatal(rsp, err)
	}
	return rsp, nil
}

func main() {
	address := flag.String("address", "127.0.0.1:9443", "host:port to serve gRPC on")
	insecure := flag.Bool("insecure", false, "serve without TLS")
	flag.Parse()
	err := function.Serve(exportFunction{},
		function.Listen("tcp", *address),
		function.Insecure(*insecure),
		function.MaxRecvMessageSize(8*1024*1024),
		// no metrics listener: its default is every interface (only loopback is allowed here), and
		// the other servers in the benchmark count no metrics either
		func(o *function.ServeOptions) error { o.MetricsAddress = ""; return nil },
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
