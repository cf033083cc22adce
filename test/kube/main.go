// Command kube-local is a multi-call binary holding the real Kubernetes components that the
// project's integration tests and dev clusters run: kube-apiserver, kube-controller-manager and
// kubectl, all compiled from the k8s.io/kubernetes module, plus a launcher ("cluster") that wires
// one API server, an embedded etcd and a controller manager into a loopback-only cluster.
//
// Invoke it as `kube-local TOOL ARGS...`, or through a link named after the tool (kubectl).
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

var tools = map[string]func() int{
	"kubectl":                 runKubectl,
	"kube-apiserver":          runAPIServer,
	"kube-controller-manager": runControllerManager,
	"cluster":                 runCluster,
	"version":                 runVersion,
}

func main() {
	name := filepath.Base(os.Args[0])
	if _, ok := tools[name]; !ok {
		if len(os.Args) < 2 {
			usage()
			os.Exit(2)
		}
		name = os.Args[1]
		os.Args = append([]string{name}, os.Args[2:]...)
	}
	run, ok := tools[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "kube-local: unknown tool %q\n", name)
		usage()
		os.Exit(2)
	}
	os.Exit(run())
}

func usage() {
	names := make([]string, 0, len(tools))
	for n := range tools {
		names = append(names, n)
	}
	fmt.Fprintf(os.Stderr, "usage: kube-local {%s} [args...]\n", strings.Join(names, "|"))
}
