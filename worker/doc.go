// Package worker is the fleetcal worker command as a library: a user's own
// worker binary, with the user's data sources, postprocess functions and
// annotation types registered, is a main that registers them and calls
// Main. cmd/worker is that main with nothing of its own.
//
//	package main
//
//	import (
//		"encoding/gob"
//
//		"github.com/fleetcal/fleetcal/data"
//		"github.com/fleetcal/fleetcal/pipeline"
//		"github.com/fleetcal/fleetcal/worker"
//
//		"example.com/mycal/boxes" // the user's loader, postprocess and types
//	)
//
//	func main() {
//		data.Register("boxes", boxes.Open)                 // a data_source {"type": "boxes", ...}
//		pipeline.RegisterPostprocess("decode", boxes.Decode) // RunSpec.Postprocess
//		pipeline.RegisterStatistic("iou", boxes.IoUStat)     // named in statistics layouts
//		gob.Register(boxes.Annotation{})                   // an annotation type of the user's own
//		worker.Main(worker.Options{})
//	}
//
// The built-in data source types ("npy", "images", "idx") are registered
// by package data, which this package imports: every worker binary built
// on Main has them. A run's data source reaches a worker as its registered
// type name and its JSON (see cluster.RunSpec.DataSource) and is decoded
// through this binary's registry (pipeline.DecodeDataSourceType), so the
// types of the user's own are registered before Main, with data.Register
// (a loader from a data.Config) or pipeline.RegisterDataSource (a
// pipeline.DataSource of the user's own type).
//
// The coordinator registers the same things (it opens the loader too, and
// cluster.NewEngine checks that the data source decodes through its
// registry and that the postprocess is registered); registering in an init
// function of a package both mains import keeps them the same. The binary takes the flags of
// cmd/worker (--nats, credentials, --secret-file, --concurrency, ...) and
// stops gracefully on SIGINT or SIGTERM.
//
// Test hook: when FLEETCAL_WORKER_TEST_SAMPLE_DELAY holds a duration (e.g.
// "200ms"), the worker sleeps that long before reading each sample. It
// exists only so that tests can kill a worker in the middle of a shard;
// never set it in production.
//
// worker imports cluster (NATS) and engine (ONNX Runtime, cgo); nothing
// in fleetcal imports it but cmd/worker.
package worker
