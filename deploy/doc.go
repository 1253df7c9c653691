// Package deploy holds what operators load beside varmenne, as files: the
// Prometheus alerting rules (prometheus/) and the Grafana dashboard (grafana/).
// Its tests check them with promtool and against the documented metric families.
package deploy
