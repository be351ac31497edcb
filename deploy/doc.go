// Package deploy holds no code: it carries the files that run fleetcal next to
// Prometheus (deploy/prometheus: a scrape config and alerting rules over the
// metrics the coordinator and the workers serve with --metrics-addr), and the
// test that checks them with promtool.
package deploy
