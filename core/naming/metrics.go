package naming

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// MetricsRegisterer is where the service registers its metrics.
type MetricsRegisterer = prometheus.Registerer

type metrics struct {
	claimsHeld     prometheus.Counter
	claimsRefused  prometheus.Counter
	published      prometheus.Counter
	cacheHits      prometheus.Counter
	resolves       *prometheus.CounterVec
	resolveSeconds prometheus.Histogram
	republishes    *prometheus.CounterVec
	lastRepublish  prometheus.Gauge
	reputs         *prometheus.CounterVec
	offerPuts      *prometheus.CounterVec
	putPeers       *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "avnode", Subsystem: "names", Name: name, Help: help}
	}
	m := &metrics{
		claimsHeld:    prometheus.NewCounter(prometheus.CounterOpts(opts("claims_held_total", "Claims this node agreed to hold as a name's first owner."))),
		claimsRefused: prometheus.NewCounter(prometheus.CounterOpts(opts("claims_refused_total", "Claims this node refused as a holder."))),
		published:     prometheus.NewCounter(prometheus.CounterOpts(opts("zones_published_total", "Zones this node signed and put."))),
		cacheHits:     prometheus.NewCounter(prometheus.CounterOpts(opts("zone_cache_hits_total", "Resolves answered from the zone cache."))),
		resolves:      prometheus.NewCounterVec(prometheus.CounterOpts(opts("resolves_total", "Resolves by result.")), []string{"result"}),
		resolveSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "avnode", Subsystem: "names", Name: "resolve_seconds", Help: "Time to resolve a name.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}),
		republishes:   prometheus.NewCounterVec(prometheus.CounterOpts(opts("republishes_total", "Owner republishes by result.")), []string{"result"}),
		lastRepublish: prometheus.NewGauge(prometheus.GaugeOpts(opts("last_republish_timestamp_seconds", "When the owner last republished successfully."))),
		reputs:        prometheus.NewCounterVec(prometheus.CounterOpts(opts("reputs_total", "Held records re-put to the closest peers, by result.")), []string{"result"}),
		offerPuts: prometheus.NewCounterVec(prometheus.CounterOpts(opts("offer_puts_total",
			"Offered zones (pub/sub, a beacon) spread to the DHT (started), or not for lack of room (skipped).")), []string{"result"}),
	}
	m.putPeers = prometheus.NewCounterVec(prometheus.CounterOpts(opts("put_peers_total",
		"Closest peers that took this node's puts: sent at once, as the key's last put had reached them (early), or once the walk found them (walked).")), []string{"when"})
	m.putPeers.WithLabelValues("early")
	m.putPeers.WithLabelValues("walked")
	m.offerPuts.WithLabelValues("started")
	m.offerPuts.WithLabelValues("skipped")
	for _, vec := range []*prometheus.CounterVec{m.resolves, m.republishes, m.reputs} {
		for _, r := range []string{"success", "failure"} {
			vec.WithLabelValues(r) // export zeros, so rates work from the start
		}
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.claimsHeld, m.claimsRefused, m.published, m.cacheHits, m.resolves,
		m.resolveSeconds, m.republishes, m.lastRepublish, m.reputs, m.offerPuts, m.putPeers} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func result(err error) string {
	if err != nil {
		return "failure"
	}
	return "success"
}

func (m *metrics) observeResolve(d time.Duration, err error) {
	m.resolves.WithLabelValues(result(err)).Inc()
	m.resolveSeconds.Observe(d.Seconds())
}

func (m *metrics) republished(err error) {
	m.republishes.WithLabelValues(result(err)).Inc()
	if err == nil {
		m.lastRepublish.SetToCurrentTime()
	}
}

func (m *metrics) reput(err error) { m.reputs.WithLabelValues(result(err)).Inc() }
