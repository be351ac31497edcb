package accuracyaware

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/fleetcal/fleetcal/engine"
	"github.com/fleetcal/fleetcal/metric"
	"github.com/fleetcal/fleetcal/pipeline"
)

// concurrentEngine is the local engine declaring that calls carrying
// their models may run at once (as the fleet engine does); it counts them.
type concurrentEngine struct {
	*engine.Engine
	n int

	mu                 sync.Mutex
	carried, inFlight  int
	maxInFlight, plain int
}

func (c *concurrentEngine) ConcurrentPredicts() int { return c.n }

func (c *concurrentEngine) Predict(ctx context.Context, o pipeline.PredictOptions) (pipeline.PredictResult, error) {
	c.mu.Lock()
	if o.Model != nil {
		c.carried++
	} else {
		c.plain++
	}
	c.inFlight++
	c.maxInFlight = max(c.maxInFlight, c.inFlight)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.inFlight--
		c.mu.Unlock()
	}()
	return c.Engine.Predict(ctx, o)
}

// TestRankingInFlight: with an engine that takes calls at once, the
// ranking's candidates are measured by Predicts carrying their models,
// several in flight, and the result is the sequential one byte for byte,
// with a config metric (cloned per call) and annotation-free.
func TestRankingInFlight(t *testing.T) {
	fm := loadSensitive(t)
	for _, labelled := range []bool{true, false} {
		data := mlpData(300, labelled)
		var met pipeline.Metric
		if labelled {
			met = metric.NewAccuracy(1)
		}
		const params = `{"maximal_drop": 0.01}`
		seq, seqRep := run(t, params, env(newEngine(t, data, 2), data.Len(), met), fm)
		ce := &concurrentEngine{Engine: newEngine(t, data, 2), n: 3}
		if labelled {
			met = metric.NewAccuracy(1)
		}
		con, conRep := run(t, params, env(ce, data.Len(), met), fm)
		if !bytes.Equal(marshal(t, seq), marshal(t, con)) {
			t.Errorf("labelled %v: the model with evaluations in flight differs from the sequential one", labelled)
		}
		if !slices.Equal(seqRep.Ranking, conRep.Ranking) || seqRep.Evaluations != conRep.Evaluations || seqRep.Final != conRep.Final {
			t.Errorf("labelled %v: ranking %v / %v, evaluations %d / %d, final %v / %v", labelled,
				seqRep.Ranking, conRep.Ranking, seqRep.Evaluations, conRep.Evaluations, seqRep.Final, conRep.Final)
		}
		if ce.carried != len(conRep.Ranking) {
			t.Errorf("labelled %v: %d Predicts carried their model, want one per ranked layer (%d)", labelled, ce.carried, len(conRep.Ranking))
		}
		t.Logf("labelled %v: %d carried, %d plain, at most %d in flight", labelled, ce.carried, ce.plain, ce.maxInFlight)
	}
}
