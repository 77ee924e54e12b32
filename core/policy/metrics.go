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
	reloads  *prometheus.CounterVec
}

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
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "avnode", Subsystem: "policy", Name: "reloads_total",
			Help: "Policy script reloads by result: ok or error.",
		}, []string{"result"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.calls, err = register(reg, m.calls); err != nil {
		return nil, err
	}
	if m.seconds, err = register(reg, m.seconds); err != nil {
		return nil, err
	}
	if m.restarts, err = register(reg, m.restarts); err != nil {
		return nil, err
	}
	if m.reloads, err = register(reg, m.reloads); err != nil {
		return nil, err
	}
	return m, nil
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
	m.calls.WithLabelValues(hook, outcome(hook, v)).Inc()
	m.seconds.WithLabelValues(hook).Observe(took.Seconds())
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
