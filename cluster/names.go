package cluster

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The JetStream resources fleetcal uses. A coordinator creates (or updates)
// them; workers only bind to them.
const (
	// StreamName is the work-queue stream holding one message per shard.
	StreamName = "FLEETCAL_SHARDS"
	// ConsumerName is the durable pull consumer every worker shares.
	ConsumerName = "fleetcal-workers"
	// ShardSubjectPrefix: shards of run R, predict P go to
	// "fleetcal.shard.R.P".
	ShardSubjectPrefix = "fleetcal.shard"
	// EventSubjectPrefix: workers report progress of predict P on the core
	// NATS subject "fleetcal.event.P" (start, heartbeat, retry, duplicate).
	EventSubjectPrefix = "fleetcal.event"
	// CancelSubjectPrefix: a coordinator ends predict P on the core NATS
	// subject "fleetcal.cancel.P"; workers stop its shards. A message whose
	// body is "run" on "fleetcal.cancel.R" ends run R (Engine.End):
	// workers stop its shards, drop those still queued and release its
	// sessions and downloads.
	CancelSubjectPrefix = "fleetcal.cancel"
	// ResultsBucket is the KeyValue bucket of shard results, keyed
	// "<predict id>.<shard key>"; the first Create of a key wins.
	ResultsBucket = "fleetcal-results"
	// RunsBucket is the KeyValue bucket of run specs, keyed by run id.
	RunsBucket = "fleetcal-runs"
	// ModelsBucket is the Object Store of marshaled models, named by the
	// hex SHA-256 of their bytes.
	ModelsBucket = "fleetcal-models"
	// PartialsBucket is the Object Store of partial results too large to
	// travel inline in a result envelope.
	PartialsBucket = "fleetcal-partials"
	// DataBucket is the Object Store of data shipped with RunSpec.ShipData,
	// named "<run id>/<path>".
	DataBucket = "fleetcal-data"
)

// Retention of the JetStream resources: old runs expire on their own.
const (
	shardMaxAge     = 24 * time.Hour
	resultsTTL      = 24 * time.Hour
	runsTTL         = 7 * 24 * time.Hour
	partialsTTL     = 24 * time.Hour
	dataTTL         = 7 * 24 * time.Hour
	setupTimeout    = 30 * time.Second
	maxDeliverAdvis = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + StreamName + "." + ConsumerName
)

// idPattern is what run ids (and so predict ids) may hold: they become
// subject tokens and KeyValue key prefixes.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func shardSubject(runID, predictID string) string {
	return ShardSubjectPrefix + "." + runID + "." + predictID
}

func eventSubject(predictID string) string { return EventSubjectPrefix + "." + predictID }

func cancelSubject(predictID string) string { return CancelSubjectPrefix + "." + predictID }

// cancelRunBody is the body of a message on cancelSubject(run id) that ends
// a whole run (an empty body ends a predict).
const cancelRunBody = "run"

// resultKey is the ResultsBucket key of a shard's result: "<predict>.<shard>"
// for its first attempt, "<predict>.<shard>=<attempt>" for a later one.
func resultKey(predictID, shardKey, attempt string) string {
	if attempt == "" {
		return predictID + "." + shardKey
	}
	return predictID + "." + shardKey + "=" + attempt
}

// resources are the handles a coordinator or worker works with.
type resources struct {
	js       jetstream.JetStream
	results  jetstream.KeyValue
	runs     jetstream.KeyValue
	models   jetstream.ObjectStore
	partials jetstream.ObjectStore
	data     jetstream.ObjectStore
}

// createResources creates or updates the stream, the consumer and the
// buckets (coordinator side).
func createResources(ctx context.Context, js jetstream.JetStream, ackWait time.Duration, maxDeliver int) (*resources, jetstream.Stream, error) {
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StreamName,
		Description: "fleetcal calibration shards, one message per shard",
		Subjects:    []string{ShardSubjectPrefix + ".>"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      shardMaxAge,
		Duplicates:  2 * time.Minute,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("create stream %s: %w", StreamName, err)
	}
	if _, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       ConsumerName,
		Description:   "fleetcal workers: one shard at a time each",
		FilterSubject: ShardSubjectPrefix + ".>",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    maxDeliver,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}); err != nil {
		return nil, nil, fmt.Errorf("create consumer %s: %w", ConsumerName, err)
	}
	r := &resources{js: js}
	if r.results, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: ResultsBucket, Description: "fleetcal shard results", TTL: resultsTTL, History: 1,
	}); err != nil {
		return nil, nil, fmt.Errorf("create key-value bucket %s: %w", ResultsBucket, err)
	}
	if r.runs, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: RunsBucket, Description: "fleetcal run specs", TTL: runsTTL, History: 1,
	}); err != nil {
		return nil, nil, fmt.Errorf("create key-value bucket %s: %w", RunsBucket, err)
	}
	for _, b := range []struct {
		name string
		ttl  time.Duration
		dst  *jetstream.ObjectStore
	}{{ModelsBucket, 0, &r.models}, {PartialsBucket, partialsTTL, &r.partials}, {DataBucket, dataTTL, &r.data}} {
		if *b.dst, err = js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket: b.name, Description: "fleetcal " + b.name, TTL: b.ttl,
		}); err != nil {
			return nil, nil, fmt.Errorf("create object store %s: %w", b.name, err)
		}
	}
	return r, st, nil
}

// bindResources looks up what a coordinator created (worker side). It
// returns an error wrapping jetstream.ErrStreamNotFound,
// ErrConsumerNotFound or ErrBucketNotFound while no coordinator has run.
func bindResources(ctx context.Context, js jetstream.JetStream) (*resources, jetstream.Consumer, error) {
	cons, err := js.Consumer(ctx, StreamName, ConsumerName)
	if err != nil {
		return nil, nil, fmt.Errorf("consumer %s on stream %s: %w", ConsumerName, StreamName, err)
	}
	r := &resources{js: js}
	if r.results, err = js.KeyValue(ctx, ResultsBucket); err != nil {
		return nil, nil, fmt.Errorf("key-value bucket %s: %w", ResultsBucket, err)
	}
	if r.runs, err = js.KeyValue(ctx, RunsBucket); err != nil {
		return nil, nil, fmt.Errorf("key-value bucket %s: %w", RunsBucket, err)
	}
	for _, b := range []struct {
		name string
		dst  *jetstream.ObjectStore
	}{{ModelsBucket, &r.models}, {PartialsBucket, &r.partials}, {DataBucket, &r.data}} {
		if *b.dst, err = js.ObjectStore(ctx, b.name); err != nil {
			return nil, nil, fmt.Errorf("object store %s: %w", b.name, err)
		}
	}
	return r, cons, nil
}

// notCreatedYet reports whether err means the coordinator has not created
// the resources yet.
func notCreatedYet(err error) bool {
	return errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrConsumerNotFound) ||
		errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNameRequired)
}
