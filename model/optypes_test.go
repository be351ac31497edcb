package model

import "testing"

// TestOpTypeSuggestions: ONNX's names are known; a near miss gets the
// closest known name, a far one none.
func TestOpTypeSuggestions(t *testing.T) {
	for _, op := range []string{"Conv", "MatMul", "Gemm", "Add", "Einsum", "Resize", "FusedConv"} {
		if !IsKnownOpType(op) {
			t.Errorf("IsKnownOpType(%q) = false", op)
		}
	}
	for _, tc := range []struct{ op, want string }{
		{"conv", "Conv"}, {"Convv", "Conv"}, {"MatMull", "MatMul"}, {"Sigmod", "Sigmoid"}, {"Xyzzy", ""}, {"", ""},
	} {
		if IsKnownOpType(tc.op) {
			t.Errorf("IsKnownOpType(%q) = true", tc.op)
		}
		if got := SuggestOpType(tc.op); got != tc.want {
			t.Errorf("SuggestOpType(%q) = %q, want %q", tc.op, got, tc.want)
		}
	}
}
