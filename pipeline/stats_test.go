package pipeline

import (
	"testing"

	"github.com/fleetcal/fleetcal/reduce"
)

func TestStatSpecFold(t *testing.T) {
	tests := []struct {
		spec StatSpec
		key  string
		ok   bool
	}{
		{StatSpec{Kind: StatMax}, "max", true},
		{StatSpec{Kind: StatMax, Fold: reduce.FoldSum}, "sum(max)", true},
		{StatSpec{Kind: StatMin, Fold: reduce.FoldMin}, "min(min)", true},
		{StatSpec{Kind: StatAbsMax, Fold: reduce.FoldMax}, "max(abs_max)", true},
		{StatSpec{Kind: StatQuantile, Q: 0.9999, Fold: reduce.FoldSum}, "sum(quantile@0.9999)", true},
		{StatSpec{Kind: StatMean, Fold: reduce.FoldSum}, "sum(mean)", true},
		{StatSpec{Kind: StatChannelMax, Axis: 1, Fold: reduce.FoldMax}, "max(channel_max@1)", false},
		{StatSpec{Kind: StatHistogram, Lo: 0, Hi: 1, Bins: 2, Fold: reduce.FoldSum}, "sum(histogram@0:1:2)", false},
		{StatSpec{Kind: StatMax, Fold: "median"}, "median(max)", false},
	}
	for _, tc := range tests {
		if got := tc.spec.Key(); got != tc.key {
			t.Errorf("%+v: Key() = %q, want %q", tc.spec, got, tc.key)
		}
		if err := tc.spec.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: Validate() = %v, want ok %v", tc.spec, err, tc.ok)
		}
	}
}
