package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fleetcal/fleetcal/engine"
	"github.com/fleetcal/fleetcal/pipeline"
	"github.com/fleetcal/fleetcal/reduce"
	"github.com/fleetcal/fleetcal/sharding"
)

// predictPattern is what predict ids hold (they prefix KeyValue keys).
var predictPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// Predict runs the samples of opts.Sampler on the workers: it plans shards
// of whole sampler batches, publishes one message per shard and merges
// the partial statistics the workers store, in shard order. With a
// metric, workers return each sample's outputs and the coordinator
// updates opts.Metric in sample-index order. A failure any worker would
// repeat fails Predict at once with a *ShardError wrapping
// ErrDeterministic, and stops the predict's other shards. A shard that
// fails otherwise on every delivery is split in two and republished; a
// single sample that keeps failing fails Predict with a *ShardError naming
// it. Predict returns
// ctx.Err() when ctx ends, and fails wrapping ErrNoWorker when no worker
// takes or progresses a shard for EngineOptions.IdleTimeout.
func (e *Engine) Predict(ctx context.Context, opts pipeline.PredictOptions) (pipeline.PredictResult, error) {
	e.modelMu.RLock()
	ref, nodes := e.model, e.nodes
	e.modelMu.RUnlock()
	if opts.Model != nil {
		var err error
		if ref, err = e.upload(ctx, opts.Model); err != nil {
			return pipeline.PredictResult{}, err
		}
		nodes = nodeIndex(opts.Model)
	}
	// A layout may name nodes (their first output), as POT's does: workers
	// get tensor names, the result is filed under the names asked for.
	layout, aliases := nodes.Resolve(opts.StatsLayout)
	if ref == nil {
		return pipeline.PredictResult{}, fmt.Errorf("cluster engine: %w", ErrNoModel)
	}
	if err := validateLayout(layout); err != nil {
		return pipeline.PredictResult{}, fmt.Errorf("cluster engine: %w", err)
	}
	sampler := opts.Sampler
	if sampler == nil {
		if e.spec.Len == 0 {
			return pipeline.PredictResult{}, fmt.Errorf("cluster engine: %w: no sampler, and RunSpec.Len (the number of samples) is not set", ErrBadSpec)
		}
		sampler = pipeline.NewBatchSampler(e.spec.Len, 1, nil)
	}
	var indices []int
	batch := 1
	for _, b := range sampler.Batches() {
		indices = append(indices, b...)
		batch = max(batch, len(b))
	}
	if e.spec.Len > 0 {
		for _, i := range indices {
			if i < 0 || i >= e.spec.Len {
				return pipeline.PredictResult{}, fmt.Errorf("sampler: sample %d: %w (data set has %d samples)", i, pipeline.ErrIndexOutOfRange, e.spec.Len)
			}
		}
	}
	size := (e.opts.ShardSize + batch - 1) / batch * batch
	plan, err := sharding.Plan(indices, size)
	if err != nil {
		return pipeline.PredictResult{}, fmt.Errorf("sampler: %w", err)
	}
	if opts.Metric != nil {
		opts.Metric.Reset()
	}
	if len(plan) == 0 {
		res := pipeline.PredictResult{Stats: reduce.NewSet()}
		if opts.Metric != nil {
			res.Metrics = opts.Metric.AvgValue()
		}
		return res, nil
	}
	if err := ctx.Err(); err != nil {
		return pipeline.PredictResult{}, err
	}
	if e.ended.Load() {
		return pipeline.PredictResult{}, fmt.Errorf("cluster engine: run %s: %w", e.spec.RunID, ErrRunEnded)
	}
	rev, err := e.ensureRun(ctx)
	if err != nil {
		return pipeline.PredictResult{}, fmt.Errorf("cluster engine: %w", err)
	}
	id, err := e.predictID(ref, opts, indices, batch)
	if err != nil {
		return pipeline.PredictResult{}, fmt.Errorf("cluster engine: %w", err)
	}
	p := &predictRun{
		e: e, id: id, subject: shardSubject(e.spec.RunID, id), opts: opts, total: len(indices),
		tmpl: shardMsg{
			V: wireVersion, Run: e.spec.RunID, RunRev: rev, Predict: id, KeyID: e.keyID, Model: *ref,
			Layout: layout, BatchSize: batch, ORT: e.opts.ORTVersion, Outputs: opts.Metric != nil,
			AckWaitMS: e.opts.AckWait.Milliseconds(), MaxDeliver: e.opts.MaxDeliver, RetryDelayMS: e.opts.RetryDelay.Milliseconds(),
		},
		shards: map[string]*shardState{}, bySeq: map[uint64]*shardState{}, stats: reduce.NewSet(),
		log: e.log.With("predict", id),
	}
	if opts.Metric != nil {
		order := slices.Clone(indices)
		slices.Sort(order)
		p.col = pipeline.NewMetricFeed(opts.Metric, order, pipeline.MetricFeedOptions{PerSample: opts.MetricPerSample})
	}
	res, err := p.run(ctx, plan)
	if err == nil {
		aliases.Apply(res.Stats, opts.StatsLayout)
	}
	return res, err
}

// validateLayout refuses, before any shard is published, the statistics
// every worker would refuse: unknown kinds (a statistic this binary does
// not register, with a suggestion), bad parameters. The error wraps
// engine.ErrBadStats, as the local engine's does.
func validateLayout(layout pipeline.StatsLayout) error {
	for _, name := range slices.Sorted(maps.Keys(layout)) {
		for _, s := range layout[name] {
			if err := s.Validate(); err != nil {
				return fmt.Errorf("%w: tensor %q: %w", engine.ErrBadStats, name, err)
			}
		}
	}
	return nil
}

// predictID names a Predict: the run id, this coordinator's random nonce
// and a sequence number. With EngineOptions.Resume it is the run id, a
// digest of what the Predict computes (its model's stage digests, the
// layout, the samples, the batch size, whether outputs come back) and the
// number of earlier Predicts of that digest on this engine: a coordinator
// started again on the run, whose algorithms make the same Predicts in the
// same order, gets the same ids and so finds the results stored for them.
func (e *Engine) predictID(ref *modelRef, opts pipeline.PredictOptions, indices []int, batch int) (string, error) {
	if !e.opts.Resume {
		return fmt.Sprintf("%s-%s-%d", e.spec.RunID, e.nonce, e.seq.Add(1)), nil
	}
	var stages []string
	for _, st := range ref.Stages {
		stages = append(stages, st.Name+"="+st.Digest)
	}
	b, err := json.Marshal(struct {
		Stages  []string
		Cascade bool
		Layout  pipeline.StatsLayout
		Indices []int
		Batch   int
		Outputs bool
	}{stages, ref.Cascade, opts.StatsLayout, indices, batch, opts.Metric != nil})
	if err != nil {
		return "", err
	}
	d := sum(b)[:16]
	e.idMu.Lock()
	defer e.idMu.Unlock()
	if e.resumeIDs == nil {
		e.resumeIDs = map[string]int{}
	}
	n := e.resumeIDs[d]
	e.resumeIDs[d]++
	return fmt.Sprintf("%s-%s-%d", e.spec.RunID, d, n), nil
}

// Shard states.
const (
	statePending = iota // published, no result yet
	stateDone           // result accepted
	stateSplit          // dead-lettered and replaced by its halves
	stateFailed         // dead-lettered for good
)

type shardState struct {
	shard     sharding.Shard
	key       string
	seq       uint64
	state     int
	published time.Time
	taken     bool   // a worker reported starting it
	worker    string // the last worker that reported on it
	lastErr   string // the last error a worker reported on it
	// partial is the accepted result, until it is merged.
	partial *reduce.Set
	rev     uint64 // revision of the result handled in ResultsBucket
	// attempts are the attempts published ("" first, then random
	// tokens); a result counts only under one of their keys.
	attempts []string
	// bad counts authenticated results that could not be used; the shard
	// fails at MaxDeliver of them.
	bad int
}

// predictRun is the state of one Predict.
type predictRun struct {
	e       *Engine
	skipped []int // samples workers skipped as invalid
	id      string
	subject string
	opts    pipeline.PredictOptions
	tmpl    shardMsg
	log     interface{ Warn(string, ...any) }
	shards  map[string]*shardState
	bySeq   map[uint64]*shardState
	col     *pipeline.MetricFeed

	// order holds every shard published, in shard order (compareShards);
	// the first merged of them are merged into stats (or were split).
	order     []*shardState
	merged    int
	stats     *reduce.Set
	mergeTime time.Duration

	outstanding  int
	done, total  int
	lastProgress time.Time
	// kept are the accepted results whose partials stay in the object
	// store until the Predict ends (EngineOptions.Resume).
	kept []*envelope
}

// initialValues reads the values a KeyValue watcher replays first, up to
// the nil entry that ends them.
func initialValues(ctx context.Context, w jetstream.KeyWatcher) ([]jetstream.KeyValueEntry, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var out []jetstream.KeyValueEntry
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case ent, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("results watcher stopped")
			}
			if ent == nil {
				return out, nil
			}
			out = append(out, ent)
		}
	}
}

func (p *predictRun) run(ctx context.Context, plan []sharding.Shard) (pipeline.PredictResult, error) {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	nc := p.e.nc
	events := make(chan *nats.Msg, 4096)
	esub, err := nc.ChanSubscribe(eventSubject(p.id), events)
	if err != nil {
		return pipeline.PredictResult{}, fmt.Errorf("cluster engine: subscribe: %w", err)
	}
	defer func() { _ = esub.Unsubscribe() }()
	advisories := make(chan *nats.Msg, 256)
	asub, err := nc.ChanSubscribe(maxDeliverAdvis, advisories)
	if err != nil {
		return pipeline.PredictResult{}, fmt.Errorf("cluster engine: subscribe: %w", err)
	}
	defer func() { _ = asub.Unsubscribe() }()
	fctx, fcancel := context.WithTimeout(rctx, 10*time.Second)
	err = nc.FlushWithContext(fctx) // the subscriptions are in place before any shard is out
	fcancel()
	if err != nil {
		return pipeline.PredictResult{}, fmt.Errorf("cluster engine: %w", err)
	}
	reconnects := nc.Stats().Reconnects
	watcher, err := p.e.res.results.Watch(rctx, p.id+".>") // deletes too: see onResult
	if err != nil {
		return pipeline.PredictResult{}, fmt.Errorf("cluster engine: watch %s: %w", ResultsBucket, err)
	}
	defer func() { _ = watcher.Stop() }()
	defer p.cleanup()

	p.lastProgress = time.Now()
	var stored []jetstream.KeyValueEntry
	if p.e.opts.Resume {
		// Results stored before this coordinator started, by the shards of
		// one that died: their shards are not published again.
		if stored, err = initialValues(rctx, watcher); err != nil {
			return pipeline.PredictResult{}, fmt.Errorf("cluster engine: read the stored results of %s: %w", p.id, err)
		}
	}
	have := map[string]bool{}
	for _, ent := range stored {
		if ent.Operation() == jetstream.KeyValuePut {
			have[strings.TrimPrefix(ent.Key(), p.id+".")] = true
		}
	}
	for _, sh := range plan {
		if have[sh.Key()] {
			p.track(sh, 0)
			continue
		}
		if err := p.publish(rctx, sh); err != nil {
			return pipeline.PredictResult{}, err
		}
	}
	if len(have) > 0 {
		p.log.Warn("resuming: results stored by an earlier coordinator are read back", "shards", len(have), "of", len(plan))
	}
	for _, ent := range stored {
		if err := p.onResult(rctx, ent); err != nil {
			return pipeline.PredictResult{}, err
		}
	}
	idle := p.e.opts.IdleTimeout
	tick := time.Second
	if idle > 0 {
		tick = min(tick, max(idle/4, 10*time.Millisecond))
	}
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	for p.outstanding > 0 {
		var err error
		select {
		case <-ctx.Done():
			return pipeline.PredictResult{}, ctx.Err()
		case ent, ok := <-watcher.Updates():
			if !ok {
				if ctx.Err() != nil {
					return pipeline.PredictResult{}, ctx.Err()
				}
				return pipeline.PredictResult{}, errors.New("cluster engine: results watcher stopped")
			}
			if ent != nil {
				err = p.onResult(rctx, ent)
			}
		case m := <-events:
			p.onEvent(m)
		case m := <-advisories:
			err = p.onAdvisory(rctx, m)
		case <-ticker.C:
			err = p.checkIdle(idle)
			if n := nc.Stats().Reconnects; err == nil && n != reconnects && nc.IsConnected() {
				// The watcher's ordered consumer lives in the server's
				// memory: after a server restart the client would notice
				// its loss only by missed heartbeats, 10 to 20 s later. A
				// new watcher replays the current value of every key of
				// the predict, so no result is lost; onResult ignores the
				// ones it has handled.
				if w, werr := p.e.res.results.Watch(rctx, p.id+".>"); werr == nil {
					_ = watcher.Stop()
					watcher, reconnects = w, n
				} else {
					p.log.Warn("watch results again after reconnecting", "err", werr)
				}
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return pipeline.PredictResult{}, ctx.Err()
			}
			return pipeline.PredictResult{}, err
		}
	}
	return p.finish()
}

// publish puts a shard on the work queue.
func (p *predictRun) publish(ctx context.Context, sh sharding.Shard) error {
	seq, err := p.send(ctx, sh, "")
	if err != nil {
		return err
	}
	p.track(sh, seq)
	return nil
}

// send publishes one attempt of a shard, sealed with the run key, and
// returns its stream sequence.
func (p *predictRun) send(ctx context.Context, sh sharding.Shard, attempt string) (uint64, error) {
	msg := p.tmpl
	msg.Shard, msg.Indices, msg.Attempt = sh.Key(), sh.Indices, attempt
	key := resultKey(p.id, msg.Shard, attempt)
	b, err := seal(p.e.key, purposeShard, key, &msg)
	if err != nil {
		return 0, fmt.Errorf("cluster engine: shard %s: %w", msg.Shard, err)
	}
	ack, err := p.e.res.js.Publish(ctx, p.subject, b, jetstream.WithMsgID(key))
	if err != nil {
		return 0, fmt.Errorf("cluster engine: publish shard %s: %w", msg.Shard, err)
	}
	for i := range p.e.copies {
		if _, err := p.e.res.js.Publish(ctx, p.subject, b, jetstream.WithMsgID(fmt.Sprintf("%s#%d", key, i))); err != nil {
			return 0, fmt.Errorf("cluster engine: publish shard %s: %w", msg.Shard, err)
		}
	}
	return ack.Sequence, nil
}

// redo republishes a pending shard whose result was rejected, as a new
// attempt whose result key nobody knew before, and drops the previous
// message if it is still queued.
func (p *predictRun) redo(ctx context.Context, st *shardState) error {
	attempt := randomID(6)
	seq, err := p.send(ctx, st.shard, attempt)
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_ = p.e.stream.DeleteMsg(dctx, st.seq)
	cancel()
	delete(p.bySeq, st.seq)
	st.seq, st.taken = seq, false
	st.attempts = append(st.attempts, attempt)
	p.bySeq[seq] = st
	return nil
}

// track records a shard published with stream sequence seq.
func (p *predictRun) track(sh sharding.Shard, seq uint64) *shardState {
	st := &shardState{shard: sh, key: sh.Key(), seq: seq, published: time.Now(), attempts: []string{""}}
	p.shards[st.key] = st
	p.bySeq[st.seq] = st
	i, _ := slices.BinarySearchFunc(p.order, st, func(a, b *shardState) int { return compareShards(a.shard, b.shard) })
	p.order = slices.Insert(p.order, i, st)
	p.outstanding++
	p.e.m.ShardsInFlight.Inc()
	return st
}

// cleanup tells workers to stop the predict's shards they are running and
// removes what is left of it on the work queue.
func (p *predictRun) cleanup() {
	for _, env := range p.kept {
		p.deleteObjects(env)
	}
	p.e.m.ShardsInFlight.Sub(float64(p.outstanding))
	if p.outstanding > 0 {
		if err := p.e.nc.Publish(cancelSubject(p.id), nil); err != nil {
			p.log.Warn("cancel shards", "err", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.e.stream.Purge(ctx, jetstream.WithPurgeSubject(p.subject)); err != nil {
		p.log.Warn("purge shards", "err", err)
	}
}

func (p *predictRun) onEvent(m *nats.Msg) {
	var ev event
	if json.Unmarshal(m.Data, &ev) != nil {
		return
	}
	st := p.shards[ev.Shard]
	if st == nil {
		return
	}
	p.lastProgress = time.Now()
	if ev.Worker != "" {
		st.worker = ev.Worker
	}
	switch ev.Kind {
	case eventStart:
		st.taken = true
		if ev.Delivered > 1 {
			p.e.m.Redeliveries.Inc()
		}
	case eventRetry:
		st.lastErr = ev.Err
		p.log.Warn("shard failed, will retry", "shard", ev.Shard, "worker", ev.Worker, "delivery", ev.Delivered, "err", ev.Err)
	case eventDuplicate:
		p.e.m.DuplicatesDropped.Inc()
	}
}

// onAdvisory handles a shard delivered MaxDeliver times without an
// acknowledgement (its workers crashed or stalled).
func (p *predictRun) onAdvisory(ctx context.Context, m *nats.Msg) error {
	var adv struct {
		StreamSeq  uint64 `json:"stream_seq"`
		Deliveries uint64 `json:"deliveries"`
	}
	if json.Unmarshal(m.Data, &adv) != nil {
		return nil
	}
	st := p.bySeq[adv.StreamSeq]
	if st == nil || st.state != statePending {
		return nil
	}
	cause := fmt.Sprintf("delivered %d times without a result (the workers died or stalled)", adv.Deliveries)
	if st.lastErr != "" {
		cause += "; last error: " + st.lastErr
	}
	return p.deadLetter(ctx, st, st.worker, &remoteError{msg: cause})
}

// onResult handles a value stored under one of the predict's keys. A
// value that is not authenticated by the run key (forged, replayed from
// another run or shard, garbage) is dropped and counted, and the shard
// redone: no client of the bus can end or bend a run by writing results.
// An authenticated result that cannot be used (its partial is missing or
// altered in the Object Store, it does not decode) is dropped and the
// shard redone too, up to MaxDeliver times.
func (p *predictRun) onResult(ctx context.Context, ent jetstream.KeyValueEntry) error {
	key, attempt, _ := strings.Cut(strings.TrimPrefix(ent.Key(), p.id+"."), "=")
	st := p.shards[key]
	if st == nil || !slices.Contains(st.attempts, attempt) {
		if ent.Operation() == jetstream.KeyValuePut {
			p.reject(nil, ent.Key(), rejectUnknown, errors.New("no such shard attempt"))
		}
		return nil
	}
	if st.state != statePending {
		if ent.Operation() == jetstream.KeyValuePut && ent.Revision() != st.rev { // not the value handled, replayed
			p.e.m.DuplicatesDropped.Inc()
		}
		return nil
	}
	if ent.Operation() != jetstream.KeyValuePut {
		// Deleted or purged before it was read: redo the shard.
		return p.unauthenticated(ctx, st, attempt, ent.Key(), rejectDeleted, errors.New("result deleted"))
	}
	var env envelope
	if err := unseal(p.e.key, purposeResult, ent.Key(), ent.Value(), &env); err != nil {
		if !errors.Is(err, errUnauthenticated) { // authenticated, but not an envelope
			return p.badPayload(ctx, st, ent.Key(), env.Worker, err)
		}
		return p.unauthenticated(ctx, st, attempt, ent.Key(), rejectUnauthenticated, err)
	}
	p.lastProgress = time.Now() // only authenticated results count as progress
	st.rev = ent.Revision()
	if env.CPU != nil {
		p.e.noteCPU(env.Worker, *env.CPU)
	}
	if env.Error != "" {
		re := &remoteError{msg: env.Error}
		switch env.Kind {
		case kindRefused:
			re.kind = ErrRefused
			if env.Cause == causeDataMismatch {
				re.cause = ErrDataMismatch
			}
		case kindSetup:
			re.kind = ErrSetup
		case kindInvalid:
			re.kind, re.cause = ErrDeterministic, pipeline.ErrInvalidSample
		case kindDeterministic:
			re.kind, re.cause = ErrDeterministic, causeError(env.Cause)
		}
		return p.deadLetter(ctx, st, env.Worker, re)
	}
	if err := p.accept(ctx, st, &env); err != nil {
		var f fatal
		if errors.As(err, &f) { // the metric or the merged statistics took part of it
			return &ShardError{Shard: key, Worker: env.Worker, Err: f.error}
		}
		if errors.As(err, new(unverified)) {
			return p.unauthenticated(ctx, st, attempt, ent.Key(), rejectUnauthenticated, err)
		}
		return p.badPayload(ctx, st, ent.Key(), env.Worker, err)
	}
	return p.mergeReady()
}

// unauthenticated drops a value anyone with the worker role could have
// written (or deleted) and redoes the shard, unless a later attempt is
// out already.
func (p *predictRun) unauthenticated(ctx context.Context, st *shardState, attempt, entKey, reason string, err error) error {
	p.reject(st, entKey, reason, err)
	if attempt != st.attempts[len(st.attempts)-1] {
		return nil
	}
	return p.redo(ctx, st)
}

// badPayload drops an authenticated result that cannot be used and redoes
// its shard, or fails Predict after MaxDeliver such results.
func (p *predictRun) badPayload(ctx context.Context, st *shardState, entKey, worker string, err error) error {
	p.reject(st, entKey, rejectBadPayload, err)
	if st.bad++; st.bad >= p.e.opts.MaxDeliver {
		return &ShardError{Shard: st.key, Worker: worker, Err: err}
	}
	return p.redo(ctx, st)
}

// Reasons a result is rejected (label values of ResultsRejected).
const (
	rejectUnknown         = "unknown_key"
	rejectUnauthenticated = "unauthenticated"
	rejectDeleted         = "deleted"
	rejectBadPayload      = "bad_payload"
)

// fatal marks an error of accept after the result was partly used: the
// shard cannot be redone.
type fatal struct{ error }

// reject counts and logs a dropped result.
func (p *predictRun) reject(st *shardState, key, reason string, err error) {
	p.e.m.ResultsRejected.WithLabelValues(reason).Inc()
	p.log.Warn("result rejected; the shard is redone", "key", key, "reason", reason, "err", err)
}

// mergeReady merges into p.stats, in shard order, the per-sample values of
// the accepted results that no pending shard precedes, and drops them. The
// coordinator thus holds the total and the per-sample values that arrived
// ahead of a slower shard, not one partial per shard (histograms and folds,
// merged on arrival, take tensors × bins and tensors × keys whatever the
// number of samples). The merge
// order is the shard order, so the bits do not depend on the order of
// arrival, and a PerSample filled in index order is never re-sorted.
func (p *predictRun) mergeReady() error {
	start := time.Now()
	defer func() { p.mergeTime += time.Since(start) }()
	for ; p.merged < len(p.order); p.merged++ {
		st := p.order[p.merged]
		switch st.state {
		case stateSplit: // its halves follow it in the order
		case stateDone:
			if err := p.stats.Merge(st.partial); err != nil {
				return fmt.Errorf("cluster engine: merge shard %s: %w", st.key, err)
			}
			st.partial = nil
		default:
			return nil
		}
	}
	return nil
}

// accept verifies, decodes and keeps a shard's result.
func (p *predictRun) accept(ctx context.Context, st *shardState, env *envelope) error {
	if env.V != wireVersion {
		return fmt.Errorf("%w: envelope version %d, want %d", ErrBadResult, env.V, wireVersion)
	}
	if env.Stats == nil {
		return fmt.Errorf("%w: no statistics", ErrBadResult)
	}
	raw, err := p.fetch(ctx, env.Stats)
	if err != nil {
		return fmt.Errorf("statistics: %w", err)
	}
	set, err := reduce.Decode(raw)
	if err != nil {
		return fmt.Errorf("%w: statistics: %w", ErrBadResult, err)
	}
	in := make(map[int]bool, len(st.shard.Indices))
	for _, i := range st.shard.Indices {
		in[i] = true
	}
	for t, m := range set.Stats {
		for k, ps := range m {
			for _, i := range ps.Indices() {
				if !in[i] {
					return fmt.Errorf("%w: tensor %q: %s: sample %d is not in the shard", ErrBadResult, t, k, i)
				}
			}
		}
	}
	for t, m := range set.Folds {
		for k, f := range m {
			if f.Count() > uint64(len(in)) {
				return fmt.Errorf("%w: tensor %q: %s: %d samples folded, the shard has %d", ErrBadResult, t, k, f.Count(), len(in))
			}
		}
	}
	nbytes := len(raw)
	if p.col != nil {
		if env.Outputs == nil {
			return fmt.Errorf("%w: no outputs for the metric", ErrBadResult)
		}
		rawOut, err := p.fetch(ctx, env.Outputs)
		if err != nil {
			return fmt.Errorf("outputs: %w", err)
		}
		nbytes += len(rawOut)
		outs, err := decodeOutputs(rawOut)
		if err != nil {
			return fmt.Errorf("%w: outputs: %w", ErrBadResult, err)
		}
		if len(outs)+len(env.Skipped) != len(in) {
			return fmt.Errorf("%w: outputs of %d samples and %d skipped, the shard has %d", ErrBadResult, len(outs), len(env.Skipped), len(in))
		}
		for _, i := range env.Skipped {
			if !in[i] {
				return fmt.Errorf("%w: skipped sample %d, not in the shard", ErrBadResult, i)
			}
			outs = append(outs, sampleOutputs{index: i, skip: true})
		}
		for _, o := range outs {
			if !in[o.index] {
				return fmt.Errorf("%w: outputs of sample %d, not in the shard", ErrBadResult, o.index)
			}
		}
		for _, o := range outs {
			if err := p.col.Add(o.index, pipeline.FeedItem{Skip: o.skip, Outputs: o.outputs, Annotation: o.annotation}); err != nil {
				return fatal{err}
			}
		}
	}
	// Histograms and non-finite counts are sums of integers, folds exact
	// minima, maxima and sums: merged on arrival, in any order, they give
	// the same bits. Per-sample values wait for their turn in shard order
	// (mergeReady).
	start := time.Now()
	if err := p.stats.Merge(&reduce.Set{Hists: set.Hists, NonFinite: set.NonFinite, Folds: set.Folds}); err != nil {
		return fatal{fmt.Errorf("%w: statistics: %w", ErrBadResult, err)}
	}
	p.mergeTime += time.Since(start)
	set.Hists, set.NonFinite, set.Folds = nil, nil, nil
	if p.e.opts.Resume {
		p.kept = append(p.kept, env) // a coordinator resuming the run reads them again
	} else {
		p.deleteObjects(env)
	}
	p.skipped = append(p.skipped, env.Skipped...)
	st.state = stateDone
	st.partial = set
	p.outstanding--
	p.done += len(st.shard.Indices)
	m := p.e.m
	m.ShardsInFlight.Dec()
	m.ShardsDone.Inc()
	m.SamplesDone.Add(float64(len(st.shard.Indices)))
	m.ShardDuration.Observe(time.Since(st.published).Seconds())
	m.PartialBytes.Add(float64(nbytes))
	if p.opts.Progress != nil {
		p.opts.Progress(p.done, p.total)
	}
	return nil
}

// fetch returns a blob's bytes after checking their size and SHA-256. An
// object that is missing or does not match fails with an unverified error:
// the Object Store is not sealed, anyone with the worker role can delete
// or replace a partial.
func (p *predictRun) fetch(ctx context.Context, b *blob) ([]byte, error) {
	raw := b.Inline
	if b.Object != "" {
		var err error
		if raw, err = getObject(ctx, p.e.res.partials, b.Object); err != nil {
			return nil, unverified{fmt.Errorf("object store %s: get %s: %w", PartialsBucket, b.Object, err)}
		}
	}
	if len(raw) != b.Size || sum(raw) != b.SHA256 {
		err := fmt.Errorf("%w: %d bytes with SHA-256 %s, the worker sent %d bytes with %s", ErrBadResult, len(raw), sum(raw), b.Size, b.SHA256)
		if b.Object != "" {
			return nil, unverified{err}
		}
		return nil, err
	}
	return raw, nil
}

// unverified marks a result whose partial in the Object Store is missing or
// altered: not the worker's doing necessarily, so it counts as
// unauthenticated (no limit on redoing the shard).
type unverified struct{ error }

func (u unverified) Unwrap() error { return u.error }

// deleteObjects removes a result's partials from the object store once read.
func (p *predictRun) deleteObjects(env *envelope) {
	for _, b := range []*blob{env.Stats, env.Outputs} {
		if b == nil || b.Object == "" {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := p.e.res.partials.Delete(ctx, b.Object); err != nil {
			p.log.Warn("delete partial", "object", b.Object, "err", err)
		}
		cancel()
	}
}

// deadLetter handles a shard that failed for good: it is split and its
// halves republished, or, for a single sample or a failure that splitting
// cannot cure (a deterministic one among them: it names its sample
// itself), Predict fails.
func (p *predictRun) deadLetter(ctx context.Context, st *shardState, worker string, cause *remoteError) error {
	if st.state != statePending {
		return nil
	}
	p.outstanding--
	p.e.m.ShardsInFlight.Dec()
	p.e.m.DeadLettered.Inc()
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_ = p.e.stream.DeleteMsg(dctx, st.seq) // gone already unless max deliveries left it there
	cancel()
	if cause.kind != nil {
		st.state = stateFailed
		return &ShardError{Shard: st.key, Worker: worker, Err: cause}
	}
	a, b, ok := sharding.Split(st.shard)
	if !ok {
		st.state = stateFailed
		var err error = cause
		if idx := st.shard.Indices[0]; !strings.HasPrefix(cause.msg, fmt.Sprintf("sample %d", idx)) {
			err = fmt.Errorf("sample %d: %w", idx, cause)
		}
		return &ShardError{Shard: st.key, Worker: worker, Err: fmt.Errorf("%w: %w", ErrDeadLetter, err)}
	}
	st.state = stateSplit
	p.log.Warn("shard failed on every delivery; splitting it", "shard", st.key, "samples", len(st.shard.Indices), "worker", worker, "err", cause.msg)
	if err := p.publish(ctx, a); err != nil {
		return err
	}
	return p.publish(ctx, b)
}

// checkIdle fails the predict when nothing happened for idle.
func (p *predictRun) checkIdle(idle time.Duration) error {
	if idle <= 0 || time.Since(p.lastProgress) < idle {
		return nil
	}
	var pending []*shardState
	for _, st := range p.shards {
		if st.state == statePending {
			pending = append(pending, st)
		}
	}
	slices.SortFunc(pending, func(a, b *shardState) int { return compareShards(a.shard, b.shard) })
	for _, st := range pending {
		if !st.taken {
			return fmt.Errorf("%w: no worker took shard %s within %s; are workers running against %s?",
				ErrNoWorker, st.key, idle, p.e.nc.ConnectedUrlRedacted())
		}
	}
	st := pending[0]
	return fmt.Errorf("%w: no progress on shard %s (worker %s) within %s", ErrNoWorker, st.key, st.worker, idle)
}

func compareShards(a, b sharding.Shard) int {
	return cmp.Or(cmp.Compare(a.ID, b.ID), cmp.Compare(a.Path, b.Path))
}

// finish returns the merged statistics and completes the metric.
func (p *predictRun) finish() (pipeline.PredictResult, error) {
	if err := p.mergeReady(); err != nil {
		return pipeline.PredictResult{}, err
	}
	if p.merged < len(p.order) {
		return pipeline.PredictResult{}, fmt.Errorf("cluster engine: shard %s: %w: not merged", p.order[p.merged].key, ErrBadResult)
	}
	p.e.m.MergeSeconds.Observe(p.mergeTime.Seconds())
	slices.Sort(p.skipped)
	res := pipeline.PredictResult{Stats: p.stats, Samples: p.total - len(p.skipped), Skipped: p.skipped}
	if p.col != nil {
		if i, missing := p.col.Missing(); missing {
			return pipeline.PredictResult{}, fmt.Errorf("cluster engine: sample %d: %w: no outputs", i, ErrBadResult)
		}
		res.Metrics = p.opts.Metric.AvgValue()
		res.PerSample = p.col.PerSample()
	}
	return res, nil
}
