package pipeline

import (
	"errors"
	"fmt"
	"strings"

	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/reduce"
)

// Statistic is a statistic of one sample's activation computed by a Go
// function: POT's stats_layout {'node': {'stat_name': fn}}. It is
// registered by name (RegisterStatistic) and asked for in a StatsLayout by
// that name, as a StatSpec Kind:
//
//	pipeline.RegisterStatistic("mean_abs", pipeline.Statistic{Compute: meanAbs})
//	layout := pipeline.StatsLayout{"conv1": {{Kind: "mean_abs"}}}
//	// res.Stats.Get("conv1", "mean_abs"): one value per sample, by index
//
// Engines run Compute where the activation is (on a fleet: on the
// workers, so every worker binary registers the same statistics before
// worker.Main), and merge the results by the declared rule only, so that
// the result has the same bits in one process and on any number of
// workers. Results are known by the statistic's name alone (a coordinator
// resuming a run with cluster.EngineOptions.Resume reuses those stored
// under it): a function whose meaning changes gets a new name.
type Statistic struct {
	// Compute returns the statistic of one sample's activation t: float32
	// data (NaN and ±Inf included, as the model produced them) with the
	// sample's shape, batch axis of 1 included. An empty result records
	// nothing for the sample; a NaN or ±Inf in it is an error. Compute
	// must be a pure function of t (the same values give the same bits)
	// and safe for concurrent use. t is Compute's own copy: it may sort or
	// rewrite it.
	Compute func(t Tensor) ([]float64, error)
	// Merge is how the samples' results combine. reduce.FoldNone (the zero
	// value) keeps every sample's result, a vector of the same length for
	// every sample, in reduce.Set.Stats keyed by sample index: POT's list
	// per sample, read in sample-index order whatever the shards. The
	// folds take one value per sample and keep only their exact
	// aggregate in reduce.Set.Folds: reduce.FoldMin and reduce.FoldMax the
	// extremum, reduce.FoldSum the exact sum (reduce.ExactSum, no rounding
	// until it is read) and the count. These are the only reductions that
	// do not depend on how samples are split into shards; an arbitrary
	// float combine function would (float addition is not associative).
	Merge reduce.FoldOp
}

// ErrUnknownStatistic: a statistics layout names a statistic that is
// neither built in nor registered in this binary.
var ErrUnknownStatistic = errors.New("unknown statistic")

var statistics = NewRegistry[Statistic]("pipeline: statistic")

// builtinStats are the StatKinds engines compute themselves.
var builtinStats = []StatKind{StatAbsHistogram, StatAbsMax, StatAbsQuantile, StatChannelMax,
	StatChannelMean, StatChannelMin, StatHistogram, StatMax, StatMean, StatMin, StatQuantile}

// RegisterStatistic makes a statistic available by name in statistics
// layouts. It panics (a programming error) when s.Compute is nil, s.Merge
// is not FoldNone, FoldMin, FoldMax or FoldSum, name is taken or is a
// built-in StatKind, or name holds other characters than letters, digits,
// '_', '-' and '.' (a statistic's name is its key in reduce.Set).
func RegisterStatistic(name string, s Statistic) {
	if s.Compute == nil {
		panic(fmt.Sprintf("pipeline: RegisterStatistic(%q) with a nil Compute", name))
	}
	if s.Merge != reduce.FoldNone && !s.Merge.Valid() {
		panic(fmt.Sprintf("pipeline: RegisterStatistic(%q): unknown merge %q", name, s.Merge))
	}
	if isBuiltinStat(StatKind(name)) {
		panic(fmt.Sprintf("pipeline: RegisterStatistic(%q): a built-in statistic", name))
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			panic(fmt.Sprintf("pipeline: RegisterStatistic(%q): %q in a statistic's name", name, r))
		}
	}
	statistics.Register(name, s)
}

// StatisticNames lists the registered statistics, sorted (built-in kinds
// are not listed).
func StatisticNames() []string { return statistics.Names() }

// LookupStatistic returns the statistic registered under name; an unknown
// name is an error wrapping ErrUnknownStatistic that suggests the closest
// name and lists the valid ones.
func LookupStatistic(name string) (Statistic, error) {
	s, ok := statistics.Get(name)
	if ok {
		return s, nil
	}
	valid := make([]string, 0, len(builtinStats))
	for _, k := range builtinStats {
		valid = append(valid, string(k))
	}
	valid = append(valid, StatisticNames()...)
	hint := ";"
	if near := model.Suggest(name, valid); near != "" {
		hint = fmt.Sprintf("; did you mean %q?", near)
	}
	return Statistic{}, fmt.Errorf("%w %q%s valid: %s (a statistic of your own is registered with pipeline.RegisterStatistic, in the coordinator and in every worker binary before worker.Main)",
		ErrUnknownStatistic, name, hint, strings.Join(valid, ", "))
}

// isBuiltinStat reports whether k is one of builtinStats (a switch: Key
// calls it for every statistic of every sample).
func isBuiltinStat(k StatKind) bool {
	switch k {
	case StatAbsHistogram, StatAbsMax, StatAbsQuantile, StatChannelMax, StatChannelMean,
		StatChannelMin, StatHistogram, StatMax, StatMean, StatMin, StatQuantile:
		return true
	}
	return false
}

// Custom reports whether s asks for a registered statistic (not a built-in
// kind), and returns it.
func (s StatSpec) Custom() (Statistic, bool) {
	if isBuiltinStat(s.Kind) {
		return Statistic{}, false
	}
	return statistics.Get(string(s.Kind))
}

// validateCustom checks a spec whose Kind is not built in: a registered
// statistic, without parameters (its Merge is declared at registration).
func (s StatSpec) validateCustom() error {
	if _, err := LookupStatistic(string(s.Kind)); err != nil {
		return err
	}
	if s.Axis != 0 || s.Q != 0 || s.Lo != 0 || s.Hi != 0 || s.Bins != 0 || s.Fold != reduce.FoldNone {
		return fmt.Errorf("statistic %s: a registered statistic takes no Axis, Q, Lo, Hi, Bins or Fold (its merge is declared by RegisterStatistic)", s.Kind)
	}
	return nil
}
