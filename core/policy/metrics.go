package policy

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	calls    *prometheus.CounterVec
	seconds  *prometheus.HistogramVec
	restarts prometheus.Counter
	spares   prometheus.Gauge
	reloads  *prometheus.CounterVec

	// The known hooks' series, looked up once: WithLabelValues on every
	// call would cost more than a call that no script handles.
	hookCalls   map[string]map[string]prometheus.Counter
	hookSeconds map[string]prometheus.Observer
}

var outcomes = []string{"allow", "deny", "order", "none", "fallback"}

// newMetrics makes the policy's collectors and registers them when reg is
// set. Collectors already registered (a second Policy in one process) are
// shared rather than refused.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "avnode", Subsystem: "policy", Name: "calls_total",
			Help: "Policy hook calls by outcome: allow, deny, order, none or fallback.",
		}, []string{"hook", "outcome"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "avnode", Subsystem: "policy", Name: "call_seconds",
			Help:    "Time a policy hook call took, worker round trip included.",
			Buckets: prometheus.ExponentialBuckets(25e-6, 2, 15), // 25µs to 400ms
		}, []string{"hook"}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "avnode", Subsystem: "policy", Name: "worker_restarts_total",
			Help: "Times the policy worker was restarted after it died or was killed.",
		}),
		spares: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "avnode", Subsystem: "policy", Name: "spare_workers",
			Help: "Policy workers loaded and idle, ready to take over from one that dies or gets stuck in a call.",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "avnode", Subsystem: "policy", Name: "reloads_total",
			Help: "Policy script reloads by result: ok or error.",
		}, []string{"result"}),
	}
	if reg != nil {
		if err := m.register(reg); err != nil {
			return nil, err
		}
	}
	m.hookCalls = make(map[string]map[string]prometheus.Counter, len(hookSpecs))
	m.hookSeconds = make(map[string]prometheus.Observer, len(hookSpecs))
	for hook := range hookSpecs {
		m.hookCalls[hook] = make(map[string]prometheus.Counter, len(outcomes))
		for _, o := range outcomes {
			m.hookCalls[hook][o] = m.calls.WithLabelValues(hook, o)
		}
		m.hookSeconds[hook] = m.seconds.WithLabelValues(hook)
	}
	return m, nil
}

func (m *metrics) register(reg prometheus.Registerer) error {
	var err error
	if m.calls, err = register(reg, m.calls); err != nil {
		return err
	}
	if m.seconds, err = register(reg, m.seconds); err != nil {
		return err
	}
	if m.restarts, err = register(reg, m.restarts); err != nil {
		return err
	}
	if m.spares, err = register(reg, m.spares); err != nil {
		return err
	}
	m.reloads, err = register(reg, m.reloads)
	return err
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}

func (m *metrics) observe(hook string, v Verdict, took time.Duration) {
	calls, known := m.hookCalls[hook]
	if !known { // a caller's typo: rare, and worth seeing in the metrics
		m.calls.WithLabelValues(hook, outcome(hook, v)).Inc()
		m.seconds.WithLabelValues(hook).Observe(took.Seconds())
		return
	}
	calls[outcome(hook, v)].Inc()
	m.hookSeconds[hook].Observe(took.Seconds())
}

func outcome(hook string, v Verdict) string {
	switch {
	case v.Fallback:
		return "fallback"
	case !v.Decided:
		return "none"
	case hookSpecs[hook].order:
		return "order"
	case v.Allow:
		return "allow"
	}
	return "deny"
}

func (m *metrics) reloaded(err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.reloads.WithLabelValues(result).Inc()
}
