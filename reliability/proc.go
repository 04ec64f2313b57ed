package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// proc is one child process the harness started: syncd serve or
// nats-server. Its output goes to a log file in the run's work dir.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // its exit, once done is closed
}

// startProc starts bin with args and env; output is appended to logPath.
func startProc(name, bin string, args, env []string, logPath string) (*proc, error) {
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "\n==== %s start %s\n", name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group: a Ctrl-C on the harness reaches the harness,
	// which stops its children itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		fmt.Fprintf(log, "==== %s exit %s: %v\n", name, time.Now().Format(time.RFC3339Nano), p.err)
		log.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits for the exit.
func (p *proc) kill() {
	if !p.alive() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// term sends SIGTERM and waits up to grace for the exit, then kills. It
// reports whether the process stopped by itself.
func (p *proc) term(grace time.Duration) bool {
	if !p.alive() {
		return true
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return true
	case <-time.After(grace):
		p.kill()
		return false
	}
}

// freePort asks the kernel for a free loopback port. The listener is
// closed at once, so another process could take it; on loopback in a run
// of its own that does not happen in practice.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitHTTP polls url until it answers 200, the process exits or timeout
// passes.
func waitHTTP(p *proc, url string, timeout time.Duration) error {
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if !p.alive() {
			return fmt.Errorf("%s exited before %s answered: %v", p.name, url, p.err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %s did not answer 200 within %s", p.name, url, timeout)
		}
		time.Sleep(50 * time.Millisecond) // polling a child's readiness
	}
}

// waitTCP polls addr until it accepts connections or timeout passes.
func waitTCP(p *proc, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if !p.alive() {
			return fmt.Errorf("%s exited before %s accepted: %v", p.name, addr, p.err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %s not accepting within %s", p.name, addr, timeout)
		}
		time.Sleep(50 * time.Millisecond) // polling a child's readiness
	}
}

// Secrets the harness's syncd processes verify and its generator signs
// with.
const (
	workosSecret = "whsec_reliability_workos"
	stripeSecret = "whsec_reliability_stripe"
)

// syncdOpts is how one syncd serve runs.
type syncdOpts struct {
	dataDir  string // SYNCD_DATA_DIR (embedded JetStream store)
	dbURL    string
	natsURL  string // empty: embedded JetStream
	replicas int    // --stream-replicas
}

// syncd is a `syncd serve` child on a loopback port of its own; restart
// runs a new process with the same options and address.
type syncd struct {
	*proc
	h    *harness
	name string
	addr string
	opts syncdOpts
	// starts counts the processes run under this name.
	starts int
}

func (h *harness) startSyncd(name string, o syncdOpts) (*syncd, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	if o.dataDir == "" {
		o.dataDir = filepath.Join(h.work, name+"-data")
	}
	s := &syncd{h: h, name: name, addr: fmt.Sprintf("127.0.0.1:%d", port), opts: o}
	return s, s.start()
}

func (s *syncd) start() error {
	env := []string{
		"HTTP_ADDR=" + s.addr,
		"SYNCD_DATA_DIR=" + s.opts.dataDir,
		"NATS_URL=" + s.opts.natsURL,
		"DATABASE_URL=" + s.opts.dbURL,
		"WORKOS_WEBHOOK_SECRET=" + workosSecret,
		"STRIPE_WEBHOOK_SECRET=" + stripeSecret,
		"STRIPE_CONNECT_WEBHOOK_SECRET=",
		"LOG_LEVEL=info",
		"SYNCD_PPROF_ADDR=",
	}
	args := []string{"serve"}
	if s.opts.replicas > 1 {
		args = append(args, "--stream-replicas", fmt.Sprint(s.opts.replicas))
	}
	s.starts++
	p, err := startProc(s.name, s.h.syncdBin, args, env, filepath.Join(s.h.work, s.name+".log"))
	if err != nil {
		return err
	}
	s.proc = p
	s.h.track(p)
	return waitHTTP(p, s.url()+"/readyz", 60*time.Second)
}

func (s *syncd) url() string { return "http://" + s.addr }

// restart starts the process again (after a kill or stop) and returns when
// it is ready.
func (s *syncd) restart() error {
	if s.alive() {
		return fmt.Errorf("%s still running", s.name)
	}
	return s.start()
}

// natsNode is one nats-server child with JetStream, alone or in a cluster.
type natsNode struct {
	*proc
	h           *harness
	name        string
	port        int
	clusterPort int
	conf        string
}

// startNATS starts n nats-server nodes; with n > 1 they form a JetStream
// cluster over loopback routes. Each node fsyncs before it acknowledges
// (sync_interval: always), as the README asks of an external NATS.
func (h *harness) startNATS(prefix string, n int) ([]*natsNode, error) {
	nodes := make([]*natsNode, n)
	for i := range nodes {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		cport := 0
		if n > 1 {
			if cport, err = freePort(); err != nil {
				return nil, err
			}
		}
		nodes[i] = &natsNode{h: h, name: fmt.Sprintf("%s-%d", prefix, i+1), port: port, clusterPort: cport}
	}
	for _, nd := range nodes {
		dir := filepath.Join(h.work, nd.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		var b strings.Builder
		fmt.Fprintf(&b, "server_name: %q\nlisten: \"127.0.0.1:%d\"\nmax_payload: 8MB\n", nd.name, nd.port)
		fmt.Fprintf(&b, "jetstream {\n  store_dir: %q\n  sync_interval: always\n}\n", filepath.Join(dir, "store"))
		if n > 1 {
			var routes []string
			for _, o := range nodes {
				if o != nd {
					routes = append(routes, fmt.Sprintf("\"nats-route://127.0.0.1:%d\"", o.clusterPort))
				}
			}
			fmt.Fprintf(&b, "cluster {\n  name: %q\n  listen: \"127.0.0.1:%d\"\n  routes: [%s]\n}\n", prefix, nd.clusterPort, strings.Join(routes, ", "))
		}
		nd.conf = filepath.Join(dir, "nats.conf")
		if err := os.WriteFile(nd.conf, []byte(b.String()), 0o644); err != nil {
			return nil, err
		}
		if err := nd.start(); err != nil {
			return nil, err
		}
	}
	return nodes, nil
}

func (nd *natsNode) start() error {
	p, err := startProc(nd.name, nd.h.natsBin, []string{"-c", nd.conf}, nil, filepath.Join(nd.h.work, nd.name+".log"))
	if err != nil {
		return err
	}
	nd.proc = p
	nd.h.track(p)
	return waitTCP(p, nd.addr(), 30*time.Second)
}

func (nd *natsNode) addr() string { return fmt.Sprintf("127.0.0.1:%d", nd.port) }
func (nd *natsNode) url() string  { return "nats://" + nd.addr() }

func natsURLs(nodes []*natsNode) string {
	var urls []string
	for _, nd := range nodes {
		urls = append(urls, nd.url())
	}
	return strings.Join(urls, ",")
}

// errStopped is returned by scenario steps when the harness is interrupted.
var errStopped = errors.New("interrupted")
