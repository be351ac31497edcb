// Package deploy holds no code: it carries the files that run fleetcal on a
// fleet, and the tests that check them against the real tools and binaries.
//
//   - systemd/: fleetcal-worker.service with its environment file, and
//     nats-server.service with its config (systemd-analyze verify and
//     security; the ExecStart lines run on a real job);
//   - container/Dockerfile: the image of both binaries with ONNX Runtime,
//     pinned like scripts/setup.sh;
//   - compose/: NATS, workers, a one-shot coordinator, Prometheus and Grafana
//     (loaded with compose-go's schema validation);
//   - k8s/: NATS as a StatefulSet, the worker Deployment, its
//     PodDisruptionBudget and KEDA ScaledObject, a Secret; k8s/job/: a
//     coordinator Job and its volume claim
//     (decoded strictly into the k8s.io/api types);
//   - grafana/: the dashboard and its provisioning; prometheus/: a scrape
//     config and alerting rules (promtool). Every metric they query is checked
//     against the /metrics of a real worker and coordinator.
//
// The tests build cmd/worker, cmd/coordinator and the nats-server of go.mod;
// they need ONNX Runtime like the other packages' tests (ONNXRUNTIME_LIB or
// scripts/setup.sh), promtool and systemd-analyze (Debian's prometheus and
// systemd packages).
package deploy
