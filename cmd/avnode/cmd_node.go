package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	nodecli "github.com/avnode/avnode/cmd/avnode/cli"
	"github.com/avnode/avnode/core/api"
	"github.com/avnode/avnode/core/config"
	"github.com/avnode/avnode/core/daemon"
	"github.com/avnode/avnode/core/repo"
)

func newInitCmd(g *nodecli.Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "init",
		Short: "Create a node's repo: config, node key, keystore and datastore",
		Long: `init creates the node's repo (default ~/.avnode, or AVNODE_REPO, or --repo):
a commented config.yaml written from the embedded defaults, the node key
(Ed25519, mode 0600), a keystore folder for identity and estate keys, and a
LevelDB datastore. It never overwrites an existing repo.`,
		Example: `  avnode init
  avnode init --repo /srv/avnode`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := repo.Init(g.Repo); err != nil {
				return err
			}
			key, err := repo.LoadNodeKey(g.Repo)
			if err != nil {
				return err
			}
			id, err := peerIDOf(key)
			if err != nil {
				return err
			}
			if g.JSON {
				return nodecli.PrintJSON(map[string]string{"repo": g.Repo, "peer_id": id})
			}
			fmt.Printf("initialized repo %s\npeer id %s\nedit %s, then start the node with: avnode run --repo %s\n",
				g.Repo, id, filepath.Join(g.Repo, repo.ConfigFile), g.Repo)
			return nil
		},
	}
}

func newRunCmd(g *nodecli.Globals) *cobra.Command {
	var configFile string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Start the node daemon (creates the repo first if needed)",
		Long: `run starts the daemon: a libp2p host on TCP and QUIC, the Kademlia DHT of the
avtr network in server mode with records kept in the repo, AutoNAT, hole
punching and the relay client, Prometheus metrics, and the control API that
the other commands use. It prints one ready line with the peer ID and the
listen addresses, then runs until SIGINT or SIGTERM and stops cleanly.

Configuration, lowest precedence first: embedded defaults, the repo's
config.yaml, --config FILE, AVNODE_* environment variables, then flags.
Every config key is a flag: --dht.mode=client, --connmgr.high=300, ...`,
		Example: `  avnode run
  avnode run --repo /tmp/n1 --listen /ip4/127.0.0.1/tcp/0 --metrics.listen ""
  avnode run --bootstrap /ip4/192.0.2.7/tcp/4001/p2p/12D3KooW...
  AVNODE_LOG_LEVEL=debug avnode run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return daemon.Run(ctx, daemon.Options{
				RepoDir: g.Repo, ConfigFile: configFile, Flags: cmd.Flags(), Environ: os.Environ(),
				Ready: os.Stdout, LogOutput: os.Stderr, StartRoles: startRoles,
			})
		},
	}
	cmd.Flags().StringVar(&configFile, "config", os.Getenv("AVNODE_CONFIG"), "an extra YAML config file, over the repo's (or set AVNODE_CONFIG)")
	config.RegisterFlags(cmd.Flags())
	return cmd
}

func newConfigCmd(g *nodecli.Globals) *cobra.Command {
	var configFile string
	load := func(cmd *cobra.Command) (*config.Config, error) {
		return daemon.LoadConfig(daemon.Options{RepoDir: g.Repo, ConfigFile: configFile, Flags: cmd.Flags(), Environ: os.Environ()})
	}
	show := &cobra.Command{
		Use:   "show",
		Short: "Print the effective config after merging every source",
		Example: `  avnode config show
  avnode config show --json --dht.mode=client`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := load(cmd)
			if err != nil {
				return err
			}
			if g.JSON {
				return nodecli.PrintJSON(c)
			}
			return printYAML(c)
		},
	}
	validate := &cobra.Command{
		Use:   "validate",
		Short: "Check the config without starting the node, each role's section by its own plugin",
		Long: `validate merges the config as 'avnode run' would and checks it. Then each
configured role (in roles, or with a role_config section) has its plugin
check its section: the plugin runs as the node would run it, is asked to
validate, and is stopped, never started. A role whose plugin is not
installed is named, not failed: the node runs without it.`,
		Example: `  avnode config validate --config ./laptop.yaml`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := load(cmd)
			if err != nil {
				return err
			}
			checked, missing, err := validateRoles(c, g.Repo)
			for _, role := range missing {
				fmt.Fprintf(os.Stderr, "warning: role %s: no plugin avnode-%s installed, so its config was not checked\n", role, role)
			}
			if err != nil {
				return err
			}
			if len(checked) > 0 {
				fmt.Printf("config is valid; roles checked by their plugins: %s\n", strings.Join(checked, ", "))
				return nil
			}
			fmt.Println("config is valid")
			return nil
		},
	}
	for _, c := range []*cobra.Command{show, validate} {
		c.Flags().StringVar(&configFile, "config", os.Getenv("AVNODE_CONFIG"), "an extra YAML config file, over the repo's")
		config.RegisterFlags(c.Flags())
	}
	get := &cobra.Command{
		Use:   "get KEY",
		Short: "Print one key (or section) of the merged config",
		Example: `  avnode config get gateway.listen
  avnode config get dht --json`,
		Args: nodecli.ExactArgs(1, "KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := load(cmd)
			if err != nil {
				return err
			}
			v, err := config.Get(c, args[0])
			if err != nil {
				return nodecli.Usagef("%v", err)
			}
			if s, ok := v.(string); ok && !g.JSON {
				fmt.Println(s)
				return nil
			}
			if g.JSON {
				return nodecli.PrintJSON(v)
			}
			return printYAML(v)
		},
	}
	get.Flags().StringVar(&configFile, "config", os.Getenv("AVNODE_CONFIG"), "an extra YAML config file, over the repo's")
	parent := &cobra.Command{
		Use:   "config",
		Short: "Show, check and change the node's configuration",
		Long: `The config merges, lowest precedence first: embedded defaults, the repo's
config.yaml, --config FILE, AVNODE_* environment variables (dots become
underscores: AVNODE_DHT_MODE), and flags (--dht.mode). Unknown keys are errors.`,
	}
	parent.AddCommand(show, validate, get, newConfigSetCmd(g))
	return parent
}

// newConfigSetCmd is `avnode config set KEY VALUE`.
func newConfigSetCmd(g *nodecli.Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "set KEY VALUE",
		Short: "Change one key in the repo's config.yaml, and apply it to the running node where it can",
		Long: `set writes KEY: VALUE into the repo's config.yaml, keeping the rest of the
file and its comments. VALUE is read as YAML: 3, true, 10m, [a, b]; a list
key also takes a,b. A value the config refuses is not written.

When the repo's node runs, it reads its config again and applies at once
log.level, policy.scripts, roles (roles added start, roles taken out stop),
role_config (the role restarts with its new section) and gateway.listen (the
gateway's role restarts there). Every other change is saved and takes effect
at the next start, and set says which.`,
		Example: `  avnode config set log.level debug
  avnode config set policy.scripts scripts/deny-names.lua
  avnode config set gateway.listen 127.0.0.1:8081     # the receiver restarts there
  avnode config set role_config.mirror.names einstein.avtr,curie.avtr
  avnode config set connmgr.high 400                  # takes effect at restart`,
		Args: nodecli.ExactArgs(2, "KEY VALUE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, text := args[0], args[1]
			if !repo.IsInitialized(g.Repo) {
				return fmt.Errorf("no repo at %s; create it with `avnode init --repo %s`", g.Repo, g.Repo)
			}
			isList, err := config.Settable(key)
			if err != nil {
				return nodecli.Usagef("%v", err)
			}
			var value any
			if err := yaml.Unmarshal([]byte(text), &value); err != nil {
				return nodecli.Usagef("%s: %q is not a YAML value: %v", key, text, err)
			}
			if isList {
				if s, ok := value.(string); ok {
					value = strings.Split(s, ",")
				}
			}
			path := filepath.Join(g.Repo, repo.ConfigFile)
			if err := config.SetInFile(path, map[string]any{key: value}); err != nil {
				return nodecli.Usagef("%v", err)
			}
			var res api.ConfigReload
			err = g.Call(cmd.Context(), "POST", "/v1/config/reload", nil, &res)
			switch {
			case errors.Is(err, api.ErrNoDaemon):
				res = api.ConfigReload{}
			case err != nil:
				return fmt.Errorf("saved %s in %s, but the running node did not take it: %w", key, path, err)
			}
			if g.JSON {
				return nodecli.PrintJSON(struct {
					Key     string `json:"key"`
					SavedIn string `json:"saved_in"`
					api.ConfigReload
				}{key, path, res})
			}
			fmt.Printf("%s set in %s\n", key, path)
			switch {
			case errors.Is(err, api.ErrNoDaemon):
				fmt.Println("no node runs on this repo: it takes effect when it starts")
			case slices.Contains(res.Applied, key):
				fmt.Println("applied to the running node")
				for _, roles := range []struct {
					what  string
					names []string
				}{{"started", res.RolesStarted}, {"stopped", res.RolesStopped}, {"restarted with it", res.RolesRestarted}} {
					if len(roles.names) > 0 {
						fmt.Printf("roles %s: %s\n", roles.what, strings.Join(roles.names, ", "))
					}
				}
			case slices.Contains(res.AtRestart, key):
				fmt.Println("takes effect at restart: the running node keeps the old value until then")
			default:
				fmt.Println("the running node's value did not change: it was the same, or a flag or AVNODE_ variable overrides the file")
			}
			return nil
		},
	}
}

func newVersionCmd(g *nodecli.Globals) *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print avnode's version (works without a running node)",
		Example: "  avnode version --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := daemon.Version()
			if g.JSON {
				return nodecli.PrintJSON(v)
			}
			fmt.Printf("avnode %s (%s %s/%s)\n", v.Version, v.Go, v.OS, v.Arch)
			if v.Commit != "" {
				changes := ""
				if v.Modified {
					changes = ", with uncommitted changes"
				}
				fmt.Printf("built from commit %s of %s%s\n", v.Commit, v.CommitTime, changes)
			}
			return nil
		},
	}
}

func peerIDOf(key crypto.PrivKey) (string, error) {
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return "", err
	}
	return id.String(), nil
}

// printYAML prints a value through its JSON form, so the keys are the config's.
func printYAML(v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var generic any
	if err := json.Unmarshal(data, &generic); err != nil {
		return err
	}
	enc := yaml.NewEncoder(os.Stdout)
	enc.SetIndent(2)
	return enc.Encode(generic)
}
