package engine

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/pipeline"
)

// LatencyOptions control MeasureLatency.
type LatencyOptions struct {
	// Threads is the intra-op thread count of the sessions; 0 leaves ONNX
	// Runtime's default (one per core), as a user's plain session has.
	Threads int
	// Warmup rounds are run first and not timed (default 3).
	Warmup int
	// MinRounds and MaxRounds bound the timed rounds (defaults 21 and 1001);
	// rounds go on past MinRounds until Budget has passed.
	MinRounds, MaxRounds int
	// Budget is the time after which no new round starts once MinRounds
	// are done (default 2 s).
	Budget time.Duration
}

// LatencyStats are one model's times in milliseconds.
type LatencyStats struct {
	MedianMs float64 `json:"median_ms"`
	P10Ms    float64 `json:"p10_ms"`
	P90Ms    float64 `json:"p90_ms"`
}

// LatencyComparison is what MeasureLatency found: per model, its times; per
// model after the first, the median and spread of the per-round ratios
// time(first model) / time(that model) (above 1: faster than the first).
type LatencyComparison struct {
	Rounds  int            `json:"rounds"`
	Threads int            `json:"threads"`
	Models  []LatencyStats `json:"models"`
	// Speedup[i-1] compares model i with model 0.
	Speedup []LatencyStats `json:"speedup"`
}

// MeasureLatency times models (serialized ONNX, as their users would load
// them) on one sample the way an independent client would: plain sessions
// with ONNX Runtime's default options but the thread count, every round
// running each model once in a rotating order (A B, B A, ...) so that a
// machine's slow phases fall on every model alike.
func MeasureLatency(ctx context.Context, models [][]byte, inputs map[string]pipeline.Tensor, o LatencyOptions) (*LatencyComparison, error) {
	if err := Init(); err != nil {
		return nil, err
	}
	if len(models) == 0 {
		return nil, fmt.Errorf("latency: no model")
	}
	o = o.withDefaults()
	sessions := make([]*latencySession, len(models))
	defer func() {
		for _, s := range sessions {
			s.close()
		}
	}()
	for i, data := range models {
		s, err := newLatencySession(data, inputs, o.Threads)
		if err != nil {
			return nil, fmt.Errorf("latency: model %d: %w", i, err)
		}
		sessions[i] = s
	}
	times := make([][]float64, len(models))
	start := time.Now()
	rounds := 0
	for r := 0; ; r++ {
		timed := r >= o.Warmup
		if timed && rounds >= o.MinRounds && (rounds >= o.MaxRounds || time.Since(start) > o.Budget) {
			break
		}
		if r == o.Warmup {
			start = time.Now()
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for k := range sessions {
			i := (k + r) % len(sessions)
			t0 := time.Now()
			if err := sessions[i].run(); err != nil {
				return nil, fmt.Errorf("latency: model %d: %w", i, err)
			}
			if timed {
				times[i] = append(times[i], float64(time.Since(t0).Nanoseconds())/1e6)
			}
		}
		if timed {
			rounds++
		}
	}
	c := &LatencyComparison{Rounds: rounds, Threads: o.Threads}
	for i := range times {
		c.Models = append(c.Models, quantiles(times[i]))
		if i == 0 {
			continue
		}
		ratios := make([]float64, rounds)
		for r := range ratios {
			ratios[r] = times[0][r] / times[i][r]
		}
		c.Speedup = append(c.Speedup, quantiles(ratios))
	}
	return c, nil
}

func (o LatencyOptions) withDefaults() LatencyOptions {
	if o.Warmup <= 0 {
		o.Warmup = 3
	}
	if o.MinRounds <= 0 {
		o.MinRounds = 21
	}
	if o.MaxRounds < o.MinRounds {
		o.MaxRounds = max(1001, o.MinRounds)
	}
	if o.Budget <= 0 {
		o.Budget = 2 * time.Second
	}
	return o
}

// quantiles returns the median, 10th and 90th percentiles of v (nearest
// rank).
func quantiles(v []float64) LatencyStats {
	s := slices.Sorted(slices.Values(v))
	q := func(f float64) float64 { return s[int(math.Round(f*float64(len(s)-1)))] }
	return LatencyStats{MedianMs: q(0.5), P10Ms: q(0.1), P90Ms: q(0.9)}
}

// latencySession is a session with its input values made once.
type latencySession struct {
	sess *ort.DynamicAdvancedSession
	in   []ort.Value
	outN int
}

func newLatencySession(data []byte, inputs map[string]pipeline.Tensor, threads int) (*latencySession, error) {
	return newLatencySessionWith(data, inputs, threads, nil)
}

// newLatencySessionWith is newLatencySession with more session options set
// by opt (nil: none).
func newLatencySessionWith(data []byte, inputs map[string]pipeline.Tensor, threads int, opt func(*ort.SessionOptions) error) (*latencySession, error) {
	in, out, err := ort.GetInputOutputInfoWithONNXData(data)
	if err != nil {
		return nil, fmt.Errorf("%w: onnxruntime: %v", ErrBadModel, unwrapORT(err))
	}
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("session options: %w", err)
	}
	defer opts.Destroy()
	if threads > 0 {
		if err := opts.SetIntraOpNumThreads(threads); err != nil {
			return nil, fmt.Errorf("session options: %w", err)
		}
	}
	if opt != nil {
		if err := opt(opts); err != nil {
			return nil, fmt.Errorf("session options: %w", err)
		}
	}
	s := &latencySession{outN: len(out)}
	var inNames, outNames []string
	for _, info := range in {
		t, ok := inputs[info.Name]
		if !ok {
			s.close()
			return nil, fmt.Errorf("%w: the sample has no input %q", ErrBadInput, info.Name)
		}
		v, err := toORT(t)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("%w: input %q: %v", ErrBadInput, info.Name, err)
		}
		s.in = append(s.in, v)
		inNames = append(inNames, info.Name)
	}
	for _, info := range out {
		outNames = append(outNames, info.Name)
	}
	s.sess, err = ort.NewDynamicAdvancedSessionWithONNXData(data, inNames, outNames, opts)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("%w: onnxruntime: %v", ErrBadModel, unwrapORT(err))
	}
	return s, nil
}

func (s *latencySession) run() error {
	out := make([]ort.Value, s.outN)
	err := s.sess.Run(s.in, out)
	destroyAll(out)
	return err
}

func (s *latencySession) close() {
	if s == nil {
		return
	}
	destroyAll(s.in)
	if s.sess != nil {
		s.sess.Destroy()
	}
}

// MeasureModelLatency times the first stage of each model on sample
// `sample` of data with MeasureLatency: the models as their users would
// load them (model.Marshal), alternated round by round.
func MeasureModelLatency(ctx context.Context, models []*model.CompressedModel, data pipeline.DataLoader, sample int, o LatencyOptions) (*LatencyComparison, error) {
	s, err := data.Item(ctx, sample)
	if err != nil {
		return nil, err // the loader's error names the sample
	}
	bufs := make([][]byte, 0, len(models))
	for _, m := range models {
		b, err := model.Marshal(m.Models()[0].Proto)
		if err != nil {
			return nil, fmt.Errorf("model %s: %w", m.Name, err)
		}
		bufs = append(bufs, b)
	}
	return MeasureLatency(ctx, bufs, s.Inputs, o)
}
