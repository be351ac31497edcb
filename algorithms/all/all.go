// Package all registers every built-in algorithm; import it for its side
// effect:
//
//	import _ "github.com/fleetcal/fleetcal/algorithms/all"
package all

import (
	_ "github.com/fleetcal/fleetcal/algorithms/accuracyaware" // AccuracyAwareQuantization
	_ "github.com/fleetcal/fleetcal/algorithms/defaultq"      // DefaultQuantization
	_ "github.com/fleetcal/fleetcal/algorithms/fastbias"      // FastBiasCorrection, BiasCorrection
	_ "github.com/fleetcal/fleetcal/algorithms/minmax"        // MinMaxQuantization
)
