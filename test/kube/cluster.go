package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
)

// ports are chosen once per state directory and kept, so that a restarted cluster is reachable
// at the address its kubeconfig names.
type ports struct {
	APIServer         int `json:"apiserver"`
	EtcdClient        int `json:"etcdClient"`
	EtcdPeer          int `json:"etcdPeer"`
	ControllerManager int `json:"controllerManager"`
}

// readyState is written to DIR/ready once the cluster serves; launchers wait for it.
type readyState struct {
	PID        int    `json:"pid"`
	Server     string `json:"server"`
	Kubeconfig string `json:"kubeconfig"`
	Etcd       string `json:"etcd"`
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, " ") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func runCluster() int {
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	dir := fs.String("dir", "", "state directory: certificates, etcd data, kubeconfig, logs (required)")
	name := fs.String("name", "kube-local", "cluster name, used in the kubeconfig")
	var apiserverArgs, kcmArgs stringList
	fs.Var(&apiserverArgs, "apiserver-arg", "extra kube-apiserver flag, e.g. --apiserver-arg=--v=2 (repeatable)")
	fs.Var(&kcmArgs, "controller-manager-arg", "extra kube-controller-manager flag (repeatable)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "cluster: --dir is required")
		return 2
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		return 1
	}
	if err := serveCluster(abs, *name, apiserverArgs, kcmArgs); err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		return 1
	}
	return 0
}

func serveCluster(dir, name string, apiserverArgs, kcmArgs []string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	readyPath := filepath.Join(dir, "ready")
	_ = os.Remove(readyPath)
	if err := os.WriteFile(filepath.Join(dir, "cluster.pid"), []byte(fmt.Sprint(os.Getpid())), 0o644); err != nil {
		return err
	}
	creds := pki{dir: filepath.Join(dir, "pki")}
	if err := creds.ensure(); err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	p, err := loadOrPickPorts(filepath.Join(dir, "ports.json"))
	if err != nil {
		return fmt.Errorf("ports: %w", err)
	}
	server := fmt.Sprintf("https://127.0.0.1:%d", p.APIServer)
	kubeconfig := filepath.Join(dir, "admin.kubeconfig")
	if err := writeKubeconfig(kubeconfig, name, server, creds); err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}

	etcd, err := startEtcd(filepath.Join(dir, "etcd"), p)
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	defer etcd.Close()

	// The command installs its own SIGINT/SIGTERM handler on construction, which starts its
	// graceful shutdown; ours sees the same signals and bounds that shutdown.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	cmd := apiserver.NewAPIServerCommand()
	cmd.SetArgs(append(apiserverFlags(dir, p, creds), apiserverArgs...))
	served := make(chan error, 1)
	go func() { served <- cmd.Execute() }()

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	client, err := adminClient(creds)
	if err != nil {
		return err
	}
	select {
	case err := <-served:
		return fmt.Errorf("kube-apiserver exited during startup: %v", err)
	case err := <-waitHealthy(ctx, client, server+"/readyz", 3*time.Minute):
		if err != nil {
			return fmt.Errorf("kube-apiserver: %w", err)
		}
	}

	kcmDone := superviseControllerManager(ctx, dir, kubeconfig, p, creds, name, kcmArgs)
	insecure := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	select {
	case err := <-served:
		return fmt.Errorf("kube-apiserver exited: %v", err)
	case err := <-waitHealthy(ctx, insecure, fmt.Sprintf("https://127.0.0.1:%d/healthz", p.ControllerManager), 2*time.Minute):
		if err != nil {
			return fmt.Errorf("kube-controller-manager: %w", err)
		}
	}

	state, _ := json.Marshal(readyState{PID: os.Getpid(), Server: server, Kubeconfig: kubeconfig, Etcd: fmt.Sprintf("http://127.0.0.1:%d", p.EtcdClient)})
	if err := writeAtomic(readyPath, state, 0o644); err != nil {
		return err
	}
	fmt.Printf("cluster %s ready at %s (kubeconfig %s)\n", name, server, kubeconfig)

	select {
	case err = <-served:
	case <-signals:
		// The API server drains in-flight requests and watches before it returns; the controller
		// manager holds watches open, so it goes first, and the wait is bounded.
		_ = os.Remove(readyPath)
		stop()
		<-kcmDone
		select {
		case err = <-served:
		case <-time.After(20 * time.Second):
			fmt.Fprintln(os.Stderr, "cluster: kube-apiserver did not drain within 20s; stopping anyway")
		}
	}
	_ = os.Remove(readyPath)
	stop()
	<-kcmDone
	return err
}

func apiserverFlags(dir string, p ports, c pki) []string {
	return []string{
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", p.EtcdClient),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", p.APIServer),
		"--cert-dir=" + filepath.Join(dir, "apiserver"),
		"--tls-cert-file=" + c.servingCert(),
		"--tls-private-key-file=" + c.servingKey(),
		"--client-ca-file=" + c.caCert(),
		"--authorization-mode=RBAC",
		fmt.Sprintf("--service-account-issuer=https://127.0.0.1:%d", p.APIServer),
		"--service-account-key-file=" + c.saPub(),
		"--service-account-signing-key-file=" + c.saKey(),
		"--service-cluster-ip-range=10.0.0.0/24",
		"--allow-privileged=true",
		// the kubernetes Service's endpoints cannot be a loopback address
		"--endpoint-reconciler-type=none",
		"--requestheader-client-ca-file=" + c.frontProxyCA(),
		"--requestheader-allowed-names=front-proxy-client",
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file=" + c.frontProxyCert(),
		"--proxy-client-key-file=" + c.frontProxyKey(),
	}
}

// Controllers a cluster without nodes needs to behave like a real one.
var controllers = []string{
	"garbage-collector-controller",
	"namespace-controller",
	"clusterrole-aggregation-controller",
	"serviceaccount-controller",
	"serviceaccount-token-controller",
	"root-ca-certificate-publisher-controller",
	"resourcequota-controller",
}

// superviseControllerManager runs kube-controller-manager as a child of this process, restarting
// it if it dies, until ctx ends. The child is killed if this process dies.
func superviseControllerManager(ctx context.Context, dir, kubeconfig string, p ports, c pki, name string, extra []string) <-chan struct{} {
	done := make(chan struct{})
	args := []string{
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", p.ControllerManager),
		"--cert-dir=" + filepath.Join(dir, "controller-manager"),
		"--leader-elect=false",
		"--controllers=" + strings.Join(controllers, ","),
		"--service-account-private-key-file=" + c.saKey(),
		"--root-ca-file=" + c.caCert(),
		"--cluster-name=" + name,
	}
	args = append(args, extra...)
	go func() {
		defer close(done)
		// Pdeathsig follows the thread that started the child: keep it alive while the child runs.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		self, err := os.Executable()
		if err != nil {
			fmt.Fprintln(os.Stderr, "controller-manager:", err)
			return
		}
		for ctx.Err() == nil {
			log, err := os.OpenFile(filepath.Join(dir, "controller-manager.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				fmt.Fprintln(os.Stderr, "controller-manager:", err)
				return
			}
			cmd := exec.Command(self, args...)
			cmd.Args[0] = "kube-controller-manager"
			cmd.Stdout, cmd.Stderr = log, log
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			if err := cmd.Start(); err != nil {
				log.Close()
				fmt.Fprintln(os.Stderr, "controller-manager:", err)
				return
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			select {
			case <-ctx.Done():
				_ = cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-exited:
				case <-time.After(10 * time.Second):
					_ = cmd.Process.Kill()
					<-exited
				}
			case err := <-exited:
				fmt.Fprintf(os.Stderr, "controller-manager exited (%v); restarting\n", err)
				time.Sleep(time.Second)
			}
			log.Close()
		}
	}()
	return done
}

func loadOrPickPorts(path string) (ports, error) {
	var p ports
	if data, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(data, &p); err != nil {
			return p, fmt.Errorf("%s: %w", path, err)
		}
		return p, nil
	}
	picked := make([]int, 4)
	listeners := make([]net.Listener, 0, 4)
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for i := range picked {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return p, err
		}
		listeners = append(listeners, l)
		picked[i] = l.Addr().(*net.TCPAddr).Port
	}
	p = ports{APIServer: picked[0], EtcdClient: picked[1], EtcdPeer: picked[2], ControllerManager: picked[3]}
	data, _ := json.Marshal(p)
	return p, writeAtomic(path, data, 0o644)
}

func adminClient(c pki) (*http.Client, error) {
	ca, err := os.ReadFile(c.caCert())
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	cert, err := tls.LoadX509KeyPair(c.adminCert(), c.adminKey())
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}}, nil
}

func waitHealthy(ctx context.Context, client *http.Client, url string, timeout time.Duration) <-chan error {
	result := make(chan error, 1)
	go func() {
		deadline := time.Now().Add(timeout)
		var last error
		for time.Now().Before(deadline) && ctx.Err() == nil {
			resp, err := client.Get(url)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					result <- nil
					return
				}
				err = fmt.Errorf("%s answered %s", url, resp.Status)
			}
			last = err
			time.Sleep(200 * time.Millisecond)
		}
		result <- errors.Join(fmt.Errorf("not healthy within %s", timeout), last)
	}()
	return result
}

func writeKubeconfig(path, name, server string, c pki) error {
	read := func(p string) (string, error) {
		b, err := os.ReadFile(p)
		return base64.StdEncoding.EncodeToString(b), err
	}
	ca, err1 := read(c.caCert())
	cert, err2 := read(c.adminCert())
	key, err3 := read(c.adminKey())
	if err := errors.Join(err1, err2, err3); err != nil {
		return err
	}
	kubeconfig := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: %[1]s
  cluster:
    server: %[2]s
    certificate-authority-data: %[3]s
users:
- name: %[1]s-admin
  user:
    client-certificate-data: %[4]s
    client-key-data: %[5]s
contexts:
- name: %[1]s
  context:
    cluster: %[1]s
    user: %[1]s-admin
current-context: %[1]s
`, name, server, ca, cert, key)
	return writeAtomic(path, []byte(kubeconfig), 0o600)
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
