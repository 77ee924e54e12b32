package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	nodecli "github.com/avnode/avnode/cmd/avnode/cli"
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
Repos are kept between runs: the same peer IDs and records come back.`,
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
	cmd.Flags().StringVar(&dir, "dir", filepath.Join(os.TempDir(), "avnode-localnet"), "folder for the nodes' repos")
	cmd.Flags().StringSliceVar(&extra, "node-flag", nil, "extra flag for every node's 'avnode run', repeatable (e.g. --node-flag=--log-level=debug)")
	return cmd
}

type localNode struct {
	repo string
	addr string
	cmd  *exec.Cmd
}

func runLocalnet(ctx context.Context, dir string, n int, extra []string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	var started []*localNode
	defer func() { stopAll(started) }()
	bootstrap := ""
	for i := 0; i < n; i++ {
		node, err := startLocalNode(ctx, self, filepath.Join(dir, fmt.Sprintf("node%d", i)), bootstrap, extra)
		if err != nil {
			return fmt.Errorf("node%d: %w", i, err)
		}
		started = append(started, node)
		if i == 0 {
			bootstrap = node.addr
		}
		fmt.Printf("node%d  %s\n       --repo %s   (log %s.log)\n", i, node.addr, node.repo, node.repo)
	}
	fmt.Printf("\n%d nodes running. Try: avnode --repo %s peers\nCtrl-C stops them all.\n", n, started[n-1].repo)
	<-ctx.Done()
	fmt.Println("stopping...")
	return nil
}

func startLocalNode(ctx context.Context, self, repoDir, bootstrap string, extra []string) (*localNode, error) {
	args := []string{"run", "--repo", repoDir,
		"--listen", "/ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/udp/0/quic-v1",
		"--metrics.listen", ""}
	if bootstrap != "" {
		args = append(args, "--bootstrap", bootstrap)
	}
	args = append(args, extra...)
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
	addr, err := waitReady(ctx, stdout, 30*time.Second)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("%w (see %s)", err, logFile.Name())
	}
	return &localNode{repo: repoDir, addr: addr, cmd: cmd}, nil
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
		done := make(chan struct{})
		go func() { n.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			n.cmd.Process.Kill()
			<-done
		}
	}
}
