package node

import (
	"github.com/prometheus/client_golang/prometheus"
)

// registerNodeMetrics adds the node's own gauges beside libp2p's.
func registerNodeMetrics(reg prometheus.Registerer, n *Node) error {
	collectors := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "avnode", Subsystem: "node", Name: "connected_peers",
			Help: "Peers with at least one open connection.",
		}, func() float64 { return float64(len(n.Host.Network().Peers())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "avnode", Subsystem: "dht", Name: "routing_table_peers",
			Help: "Peers in the Kademlia routing table.",
		}, func() float64 { return float64(n.DHT.RoutingTable().Size()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "avnode", Subsystem: "node", Name: "reachability",
			Help: "AutoNAT's verdict: 0 unknown, 1 public, 2 private.",
		}, func() float64 { return float64(n.Reachability()) }),
		prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "avnode", Subsystem: "node", Name: "info",
			Help:        "Always 1; labels carry the version.",
			ConstLabels: prometheus.Labels{"version": Version},
		}),
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	collectors[3].(prometheus.Gauge).Set(1)
	return nil
}
