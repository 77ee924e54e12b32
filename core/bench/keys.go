package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/avnode/avnode/core/idkey"
	"github.com/avnode/avnode/core/names"
)

// keyResults are the key lifecycle rows' measures: resolves of names whose
// key rotated (Ed25519 → hybrid) and of names claimed with a hybrid key,
// and the signing and checking cost and size of a zone by each key type.
type keyResults struct {
	rotatedCold, rotatedWarm *latencies
	hybridCold, hybridWarm   *latencies
	sign, verify, size       map[string]float64 // by key type: µs, µs, bytes
}

// keyNames is how many names of each kind the key rows resolve: enough
// for a median, few enough that claiming them stays cheap.
func keyNames(opts Options) int { return max(1, min(opts.Names, 20)) }

// measureKeys claims names of two more kinds, one per item: "rot<i>.avtr",
// claimed with Ed25519 then rotated to a hybrid key, and "pq<i>.avtr",
// claimed with a hybrid key; then resolves them cold and warm as the direct
// names were.
func measureKeys(ctx context.Context, opts Options, net *cluster, av func(int) *avMember) (*keyResults, error) {
	items := keyNames(opts)
	owner := func(item int) int { return (item + 1) % opts.Nodes }
	res := &keyResults{}
	err := parallel(items, 8, func(item int) error {
		m := av(owner(item))
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		old, pq, hybrid := fmt.Sprintf("rot%d", item), fmt.Sprintf("rot%d-pq", item), fmt.Sprintf("pq%d", item)
		for key, typ := range map[string]string{old: idkey.TypeEd25519, pq: idkey.TypeHybrid, hybrid: idkey.TypeHybrid} {
			if err := m.newKeyOfType(key, typ); err != nil {
				return err
			}
		}
		if _, err := m.d.Names.Claim(cctx, old+".avtr", old); err != nil {
			return err
		}
		if _, err := m.d.Names.RotateKey(cctx, old+".avtr", pq); err != nil {
			return err
		}
		_, err := m.d.Names.Claim(cctx, hybrid+".avtr", hybrid)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	kind := func(prefix string, wantRotations int) *target {
		name := func(item int) string { return fmt.Sprintf("%s%d.avtr", prefix, item) }
		return &target{net: net, items: items, owner: owner,
			key: func(item int) string { n, _ := names.Parse(name(item)); return names.ZoneKey(n) },
			resolve: func(ctx context.Context, m, item int) error {
				r, err := av(m).d.Names.Resolve(ctx, name(item))
				if err == nil && (r.KeyType != idkey.TypeHybrid || r.Rotations != wantRotations) {
					err = fmt.Errorf("resolve %s: key type %s, %d rotations", name(item), r.KeyType, r.Rotations)
				}
				return err
			}}
	}
	res.rotatedCold, res.rotatedWarm = kind("rot", 1).coldAndWarm(ctx)
	res.hybridCold, res.hybridWarm = kind("pq", 0).coldAndWarm(ctx)
	logf(opts, "avnode: %d rotated and %d hybrid names resolved", items, items)
	res.sign, res.verify, res.size, err = zoneCosts()
	return res, err
}

// zoneCosts signs and checks a zone of one ROOT and one HOST record with
// each key type, as the owner's node and every holder do.
func zoneCosts() (sign, verify, size map[string]float64, err error) {
	sign, verify, size = map[string]float64{}, map[string]float64{}, map[string]float64{}
	const rounds = 50
	for _, typ := range []string{idkey.TypeEd25519, idkey.TypeHybrid} {
		priv, err := idkey.Generate(typ)
		if err != nil {
			return nil, nil, nil, err
		}
		z, err := benchZone(priv)
		if err != nil {
			return nil, nil, nil, err
		}
		var data []byte
		start := time.Now()
		for range rounds {
			if data, err = z.Sign(priv); err != nil {
				return nil, nil, nil, err
			}
		}
		sign[typ] = float64(time.Since(start).Microseconds()) / rounds
		v := names.ZoneValidator{Claims: names.ClaimValidator{MinDifficulty: 1}}
		start = time.Now()
		for range rounds {
			if _, err := v.DecodeValid(z.Key(), data); err != nil {
				return nil, nil, nil, err
			}
		}
		verify[typ] = float64(time.Since(start).Microseconds()) / rounds
		size[typ] = float64(len(data))
	}
	return sign, verify, size, nil
}

func benchZone(priv crypto.PrivKey) (*names.Zone, error) {
	n, _ := names.Parse("bench.avtr")
	c, err := names.MintClaim(context.Background(), n, priv, 1, time.Now())
	if err != nil {
		return nil, err
	}
	machine, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, err
	}
	host, err := peer.IDFromPrivateKey(machine)
	if err != nil {
		return nil, err
	}
	return &names.Zone{Name: n, Seq: 1, Expiry: time.Now().Add(time.Hour), TTL: time.Minute, Claim: c, Records: []names.Record{
		{Type: names.TypeROOT, Value: "bafkqaaa"}, {Type: names.TypeHOST, Value: host.String()},
	}}, nil
}
