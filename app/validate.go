package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/fleetcal/fleetcal/algorithms/accuracyaware"
	"github.com/fleetcal/fleetcal/algorithms/defaultq"
	"github.com/fleetcal/fleetcal/algorithms/fastbias"
	"github.com/fleetcal/fleetcal/algorithms/minmax"
	"github.com/fleetcal/fleetcal/pipeline"
)

// checkBeforeRun checks what Quantize can check before it opens anything
// (the output folder: outputs.Check): the algorithm list makes sense.
func checkBeforeRun(o QuantizeOptions, cfg *pipeline.Config, log *slog.Logger) error {
	warnings, err := checkAlgorithms(cfg.Compression.Algorithms)
	if err != nil {
		return fmt.Errorf("config %s: %w", o.Config, err)
	}
	for _, w := range warnings {
		log.Warn(w)
	}
	return nil
}

// quantizers are the algorithms that turn a float model into a quantized
// one; a list holds at most one.
var quantizers = map[string]bool{defaultq.Name: true, minmax.Name: true, accuracyaware.Name: true}

// checkAlgorithms refuses an algorithm listed twice and two quantizers in
// one list (each entry is named), and warns about combinations POT runs
// but that repeat work: FastBiasCorrection or BiasCorrection after a
// quantizer that already corrects the bias corrects it twice.
func checkAlgorithms(algs []pipeline.AlgorithmConfig) (warnings []string, err error) {
	seen := map[string]int{}
	quantizer, corrected := -1, -1
	for i, a := range algs {
		if j, dup := seen[a.Name]; dup {
			return nil, fmt.Errorf("compression.algorithms[%d] and [%d] are both %s: list it once", j, i, a.Name)
		}
		seen[a.Name] = i
		switch {
		case quantizers[a.Name] && quantizer >= 0:
			return nil, fmt.Errorf("compression.algorithms[%d] (%s) and [%d] (%s) both quantize the model: keep one (DefaultQuantization is MinMaxQuantization then FastBiasCorrection)",
				quantizer, algs[quantizer].Name, i, a.Name)
		case quantizers[a.Name]:
			quantizer = i
			if correctsBias(a) {
				corrected = i
			}
		case (a.Name == fastbias.Name || a.Name == fastbias.BiasCorrectionName) && corrected >= 0:
			warnings = append(warnings, fmt.Sprintf("compression.algorithms[%d] (%s) runs after [%d] (%s), which already corrects the bias: it is corrected twice (use MinMaxQuantization in [%d] to correct it once)",
				i, a.Name, corrected, algs[corrected].Name, corrected))
		}
	}
	return warnings, nil
}

// correctsBias reports whether a quantizer entry corrects the bias itself:
// DefaultQuantization (FastBiasCorrection, or BiasCorrection with
// use_fast_bias false, as in POT), and AccuracyAwareQuantization on its
// default base. Parameters that do not decode are left to the algorithm,
// which reports them.
func correctsBias(a pipeline.AlgorithmConfig) bool {
	var p struct {
		BaseAlgorithm string `json:"base_algorithm"`
	}
	if len(a.Params) > 0 && json.Unmarshal(a.Params, &p) != nil {
		return false
	}
	switch {
	case a.Name == defaultq.Name:
		return true
	case a.Name == accuracyaware.Name:
		return p.BaseAlgorithm == "" || p.BaseAlgorithm == defaultq.Name
	}
	return false
}

// createPipeline is pipeline.Create with errors naming the config file's
// keys (compression.algorithms[i]).
func createPipeline(configs []pipeline.AlgorithmConfig, env pipeline.AlgorithmEnv) (*pipeline.Pipeline, error) {
	if len(configs) == 0 {
		return nil, fmt.Errorf("%w: compression.algorithms is empty; valid algorithms: %s", pipeline.ErrConfig, strings.Join(pipeline.AlgorithmNames(), ", "))
	}
	p, err := pipeline.Create(configs, env)
	if ae := (*pipeline.AlgorithmError)(nil); errors.As(err, &ae) {
		return nil, fmt.Errorf("compression.algorithms[%d]: %w", ae.Index, ae.Err)
	}
	return p, err
}
