package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	nodecli "github.com/avnode/avnode/cmd/avnode/cli"
	"github.com/avnode/avnode/core/config"
	"github.com/avnode/avnode/core/repo"
)

func newLocalnetCmd(g *nodecli.Globals) *cobra.Command {
	var nodes int
	var dir string
	var extra []string
	cmd := &cobra.Command{
		Use:   "localnet",
		Short: "Run a network of several nodes on this machine (loopback)",
		Long: `localnet starts N avnode daemons as separate processes on 127.0.0.1, each with
its own repo under --dir (node0, node1, ...). node0 starts first; the others
bootstrap from it. It prints each repo so you can drive any node with
--repo, and stops them all on Ctrl-C. Logs go to <dir>/nodeN.log.

Each repo's config.yaml says how localnet runs the node (a loopback port of
its own, no metrics endpoint, node0 to bootstrap from), so 'avnode run
--repo <dir>/nodeN' runs one node the same way by hand. A node that dies is
reported, with that command; 'avnode localnet restart N' restarts node N
of the running localnet, which keeps supervising it. Repos are kept between
runs: the same peer IDs, ports and records come back. A folder another
localnet (or a node) uses is refused.`,
		Example: `  avnode localnet --nodes 4 --dir /tmp/avnet
  # in another terminal:
  avnode --repo /tmp/avnet/node3 peers
  avnode --repo /tmp/avnet/node3 routing findpeer <peer id of node1>`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if nodes < 1 || nodes > 64 {
				return nodecli.Usagef("--nodes must be between 1 and 64, got %d", nodes)
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runLocalnet(ctx, dir, nodes, extra)
		},
	}
	cmd.Flags().IntVar(&nodes, "nodes", 4, "how many nodes to start")
	cmd.PersistentFlags().StringVar(&dir, "dir", filepath.Join(os.TempDir(), "avnode-localnet"), "folder for the nodes' repos")
	cmd.Flags().StringSliceVar(&extra, "node-flag", nil, "extra flag for every node's 'avnode run', repeatable (e.g. --node-flag=--log-level=debug)")
	cmd.AddCommand(&cobra.Command{
		Use:   "restart N",
		Short: "Restart node N of the localnet running on --dir",
		Long: `restart asks the localnet running on --dir to stop node N and start it
again, on the same repo and port; the localnet says so when it is back.`,
		Example: "  avnode localnet restart 2 --dir /tmp/avnet",
		Args:    nodecli.ExactArgs(1, "N"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return requestRestart(dir, args[0])
		},
	})
	return cmd
}

// requestRestart marks node N for a restart and stops it: the localnet
// supervising it sees the mark when the node exits, and starts it again.
func requestRestart(dir, n string) error {
	if _, err := strconv.Atoi(n); err != nil {
		return nodecli.Usagef("N is a node's number, like 2 for node2; got %q", n)
	}
	if lock, err := lockLocalnet(dir); err == nil {
		lock.Close() // nobody held it: no localnet would start the node again
		return fmt.Errorf("no localnet runs on %s: start one with `avnode localnet --dir %s`", dir, dir)
	}
	repoDir := filepath.Join(dir, "node"+n)
	pidText, running := repo.InUse(repoDir)
	if !running {
		return fmt.Errorf("node%s of %s is not running (see %s.log)", n, dir, repoDir)
	}
	pid, err := strconv.Atoi(pidText)
	if err != nil {
		return fmt.Errorf("node%s: no pid in its repo lock (%q)", n, pidText)
	}
	if err := os.WriteFile(repoDir+".restart", nil, 0o600); err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		os.Remove(repoDir + ".restart")
		return fmt.Errorf("node%s (pid %d): %w", n, pid, err)
	}
	fmt.Printf("node%s is stopping; the localnet starts it again\n", n)
	return nil
}

type localNode struct {
	name string // node0, node1, ...
	repo string
	addr string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
}

func runLocalnet(ctx context.Context, dir string, n int, extra []string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	lock, err := lockLocalnet(dir)
	if err != nil {
		return err
	}
	defer lock.Close()
	repos := make([]string, n)
	for i := range repos {
		repos[i] = filepath.Join(dir, fmt.Sprintf("node%d", i))
	}
	if err := prepareRepos(repos); err != nil {
		return err
	}
	var started []*localNode
	defer func() { stopAll(started) }()
	for i, repoDir := range repos {
		node, err := startLocalNode(ctx, self, fmt.Sprintf("node%d", i), repoDir, extra)
		if err != nil {
			return fmt.Errorf("node%d: %w", i, err)
		}
		started = append(started, node)
		fmt.Printf("node%d  %s\n       --repo %s   (log %s.log)\n", i, node.addr, node.repo, node.repo)
	}
	fmt.Printf("\n%d nodes running. Try: avnode --repo %s peers\nCtrl-C stops them all.\n", n, started[n-1].repo)
	superviseLocalnet(ctx, started, func(dead *localNode) (*localNode, error) {
		return startLocalNode(ctx, self, dead.name, dead.repo, extra)
	})
	fmt.Println("stopping...")
	return nil
}

// superviseLocalnet waits for Ctrl-C, and says so when a node dies on its
// own: which one, how many run on, and how to start it again. Each node's
// repo holds its whole config, so `avnode run --repo` starts it as
// localnet did.
//
// A node marked by `localnet restart` (a nodeN.restart file) is started
// again instead, and keeps its place in nodes, so stopAll stops it.
func superviseLocalnet(ctx context.Context, nodes []*localNode, restart func(*localNode) (*localNode, error)) {
	died := make(chan int, len(nodes))
	watch := func(i int) {
		done := nodes[i].done
		go func() {
			select {
			case <-done:
				died <- i
			case <-ctx.Done():
			}
		}()
	}
	for i := range nodes {
		watch(i)
	}
	running := len(nodes)
	for {
		select {
		case i := <-died:
			if ctx.Err() != nil {
				return
			}
			n := nodes[i]
			if os.Remove(n.repo+".restart") == nil {
				again, err := restart(n)
				if err == nil {
					nodes[i] = again
					watch(i)
					fmt.Printf("%s restarted: %s\n", n.name, again.addr)
					continue
				}
				fmt.Printf("%s did not start again: %v\n", n.name, err)
			}
			running--
			fmt.Printf("%s exited (%v); %d of %d nodes running. Its log: %s.log. Start it again with:\n  avnode run --repo %s\n",
				n.name, n.cmd.ProcessState, running, len(nodes), n.repo, n.repo)
		case <-ctx.Done():
			return
		}
	}
}

// lockLocalnet holds dir for this localnet: a second one on the same dir
// is refused at once, naming the first, instead of failing node by node.
func lockLocalnet(dir string) (*os.File, error) {
	path := filepath.Join(dir, "localnet.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		return nil, fmt.Errorf("%s is in use by another localnet (pid %s); stop it, or choose another --dir", dir, strings.TrimSpace(string(holder)))
	}
	f.Truncate(0)
	fmt.Fprintf(f, "%d\n", os.Getpid())
	return f, nil
}

// prepareRepos makes each node's repo and writes into its config.yaml what
// localnet runs it with, so that `avnode run --repo nodeN` alone runs it
// the same way: loopback ports of its own (kept from run to run), no
// metrics endpoint, and node0 to bootstrap from. A repo a node runs in is
// refused, naming its pid.
func prepareRepos(repos []string) error {
	var first string
	for i, repoDir := range repos {
		if !repo.IsInitialized(repoDir) {
			if err := repo.Init(repoDir); err != nil {
				return err
			}
		}
		if pid, busy := repo.InUse(repoDir); busy {
			return fmt.Errorf("%s is in use by a running node (pid %s); stop it, or choose another --dir", repoDir, pid)
		}
		port, err := localnetPort(repoDir)
		if err != nil {
			return err
		}
		key, err := repo.LoadNodeKey(repoDir)
		if err != nil {
			return err
		}
		id, err := peerIDOf(key)
		if err != nil {
			return err
		}
		settings := map[string]any{
			"listen":         []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port), fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", port)},
			"metrics.listen": "",
			// Each node's dashboard on a port of its own: `avnode dashboard --repo DIR/nodeN`.
			"dashboard.listen": "127.0.0.1:0",
			"bootstrap":        []string{},
		}
		if i == 0 {
			first = fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", port, id)
		} else {
			settings["bootstrap"] = []string{first}
		}
		if err := config.SetInFile(filepath.Join(repoDir, repo.ConfigFile), settings); err != nil {
			return err
		}
	}
	return nil
}

// localnetPort is the loopback port a node's config already has, or a
// free one for a node set up now.
func localnetPort(repoDir string) (int, error) {
	c, err := config.Load(config.Sources{RepoFile: filepath.Join(repoDir, repo.ConfigFile)})
	if err == nil {
		for _, l := range c.Listen {
			var port int
			if _, err := fmt.Sscanf(l, "/ip4/127.0.0.1/tcp/%d", &port); err == nil && port > 0 {
				return port, nil
			}
		}
	}
	return freePort()
}

// freePort is a port free for both TCP and UDP on loopback.
func freePort() (int, error) {
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		ln.Close()
		if err == nil {
			pc.Close()
			return port, nil
		}
	}
	return 0, fmt.Errorf("no loopback port free for both TCP and UDP")
}

func startLocalNode(ctx context.Context, self, name, repoDir string, extra []string) (*localNode, error) {
	args := append([]string{"run", "--repo", repoDir}, extra...)
	logFile, err := os.OpenFile(repoDir+".log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(self, args...)
	cmd.Stderr = logFile
	dieWithParent(cmd)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	node := &localNode{name: name, repo: repoDir, cmd: cmd, done: make(chan struct{})}
	addr, err := waitReady(ctx, stdout, 30*time.Second)
	// The pipe is read to its end before Wait, which closes it.
	go func() { cmd.Wait(); close(node.done) }()
	if err != nil {
		cmd.Process.Kill()
		<-node.done
		return nil, fmt.Errorf("%w (see %s)", err, logFile.Name())
	}
	node.addr = addr
	return node, nil
}

// waitReady reads the daemon's ready line and returns its first TCP address.
func waitReady(ctx context.Context, stdout interface{ Read([]byte) (int, error) }, timeout time.Duration) (string, error) {
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "avnode ready:") {
				lines <- sc.Text()
			}
		}
		close(lines)
	}()
	select {
	case line, ok := <-lines:
		if !ok {
			return "", fmt.Errorf("daemon exited before it was ready")
		}
		for _, field := range strings.Fields(line) {
			if strings.Contains(field, "/tcp/") {
				return field, nil
			}
		}
		return "", fmt.Errorf("ready line has no TCP address: %q", line)
	case <-time.After(timeout):
		return "", fmt.Errorf("daemon not ready after %s", timeout)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func stopAll(nodes []*localNode) {
	for _, n := range nodes {
		n.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, n := range nodes {
		select {
		case <-n.done:
		case <-time.After(10 * time.Second):
			n.cmd.Process.Kill()
			<-n.done
		}
	}
}
