package bench

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/avnode/avnode/core/names"
	"github.com/avnode/avnode/core/naming"
)

// estateTTL is the estate records' cache lifetime in the bench: the bound
// on how long a move takes to reach a resolver that looked before.
const estateTTL = 2 * time.Second

// estateResults are the estate rows' measures: resolves of names hosted
// through an estate, and how long a move takes to reach another node.
type estateResults struct {
	cold, warm *latencies
	move       time.Duration
}

// measureEstates claims one more name per item, each hosted on an estate
// of its owner (HOST estate:<ID>), resolves them cold and warm as the
// direct names were, then moves one estate to another member and times
// until a member that had resolved it sees the new machine.
func measureEstates(ctx context.Context, opts Options, net *cluster, av func(int) *avMember) (*estateResults, error) {
	name := func(item int) string { return fmt.Sprintf("estate%d.avtr", item) }
	owner := func(item int) int { return item % opts.Nodes }
	estates := make([]string, opts.Names)
	err := parallel(opts.Names, 8, func(item int) error {
		m, label := av(owner(item)), fmt.Sprintf("estate%d", item)
		if err := m.newKey(label); err != nil {
			return err
		}
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if _, err := m.d.Names.Claim(cctx, name(item), label); err != nil {
			return err
		}
		h, err := m.d.Names.CreateEstate(cctx, label, "", estateTTL)
		if err != nil {
			return err
		}
		estates[item] = h.ID
		_, err = m.d.Names.ChangeRecord(cctx, naming.RecordChange{Name: name(item), Type: "HOST", Value: names.EstateHostPrefix + h.ID})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("estates: %w", err)
	}
	t := &target{net: net, items: opts.Names, owner: owner,
		key: func(item int) string { n, _ := names.Parse(name(item)); return names.ZoneKey(n) },
		resolve: func(ctx context.Context, m, item int) error {
			res, err := av(m).d.Names.Resolve(ctx, name(item))
			if err == nil && len(res.Estates) != 1 {
				err = fmt.Errorf("resolve %s: %d estates", name(item), len(res.Estates))
			}
			return err
		}}
	res := &estateResults{}
	res.cold, res.warm = t.coldAndWarm(ctx)
	logf(opts, "avnode: %d names resolved through estates", opts.Names)
	res.move, err = moveEstate(ctx, av(owner(0)), av(owner(0)+1), av(owner(0)+2), name(0))
	return res, err
}

// moveEstate moves the estate of name from one member to another and
// times until a third member, which resolved the name before, names the
// new machine.
func moveEstate(ctx context.Context, from, to, reader *avMember, name string) (time.Duration, error) {
	if _, err := reader.d.Names.Resolve(ctx, name); err != nil {
		return 0, err
	}
	hosted, err := from.d.Names.HostedEstates(ctx)
	if err != nil || len(hosted) == 0 {
		return 0, fmt.Errorf("estate move: no estate on the first member (%v)", err)
	}
	seal := naming.Sealing{Passphrase: "bench"}
	sealed, _, err := from.d.Names.ExportEstate(ctx, hosted[0].ID, seal)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	if _, err := to.d.Names.ImportEstate(ctx, sealed, seal); err != nil {
		return 0, err
	}
	for time.Since(start) < time.Minute {
		res, err := reader.d.Names.Resolve(ctx, name)
		if err == nil && len(res.Estates) == 1 && slices.Contains(res.Estates[0].Hosts, to.host().ID().String()) {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return 0, fmt.Errorf("estate move: the reader still did not see %s after a minute", peer.ID(to.host().ID()))
}
